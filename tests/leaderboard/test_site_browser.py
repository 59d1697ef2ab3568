"""The leaderboard site in a real browser: headless Chromium against `leaderboard serve`."""

from __future__ import annotations

import html.parser
import io
import math
import pathlib
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from eva_coralbay.leaderboard import render_site, stats
from eva_coralbay.leaderboard.aggregate import Board
from eva_coralbay.leaderboard.tasks import builtin_registry

Site = tuple[pathlib.Path, Board]

_LINKS = """
return Array.from(document.querySelectorAll('a[href], img[src], link[href], script[src]'))
  .map(e => [e.tagName, e.getAttribute('href') ?? e.getAttribute('src'), e.href || e.src]);
"""
_ROWS = """
return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))
  .filter(row => !row.hidden)
  .map(row => row.querySelector('th a').getAttribute('href'));
"""


class _Ids(html.parser.HTMLParser):
    """Collects every `id` attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def _errors(browser: Any) -> list[dict]:
    """The console entries since the last call that are errors (the log empties on reading)."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _pages(root: pathlib.Path) -> list[str]:
    folder = root / render_site.FOLDER
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.html"))


def _model_ids(hrefs: list[str]) -> list[str]:
    return [href.rsplit("/", 1)[-1].removesuffix(".html") for href in hrefs]


def test_every_page_loads_cleanly_and_every_link_resolves(
    browser: Any, site_board: Site, site_url: str
) -> None:
    root, board = site_board
    pages = _pages(root)
    # The index, a page per task and per model, the label-efficiency and robustness views.
    assert len(pages) == 1 + len(board.tasks) + len(board.models) + 2
    statuses: dict[str, int] = {}
    ids: dict[str, set[str]] = {}
    _errors(browser)
    for page in pages:
        browser.get(site_url + page)
        assert _errors(browser) == [], page
        assert browser.find_element("tag name", "h1").text
        # Every image decoded (the heatmap and the size plot are valid SVGs).
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)"
        )
        assert broken == [], page
        for tag, raw, resolved in browser.execute_script(_LINKS):
            if raw.startswith("data:"):
                continue  # the empty icon
            target = urllib.parse.urlsplit(resolved)
            if not resolved.startswith(site_url):
                # Outside links (papers, weights) cannot be fetched offline: well-formed only.
                assert target.scheme in ("http", "https") and target.netloc, (page, raw)
                continue
            address = resolved.split("#", 1)[0]
            if address not in statuses:
                status, content = _get(address)
                statuses[address] = status
                parser = _Ids()
                parser.feed(content.decode("utf-8", "replace"))
                ids[address] = parser.ids
            assert statuses[address] == 200, (page, tag, raw)
            if target.fragment:
                assert target.fragment in ids[address], (page, raw)
    # The site links every page: all of them were reached from the pages themselves.
    assert {site_url + page for page in pages} <= set(statuses)


def _expected(values: list[Any], order: list[str], descending: bool) -> list[str]:
    """Model ids sorted as the page sorts them: missing last, ties in leaderboard order."""
    missing = [
        value is None or (isinstance(value, float) and math.isnan(value)) for value in values
    ]
    known = [(m, v) for m, v, gone in zip(order, values, missing, strict=True) if not gone]
    known.sort(key=lambda item: item[1], reverse=descending)  # stable in both directions
    return [m for m, _ in known] + [m for m, gone in zip(order, missing, strict=True) if gone]


def _header(browser: Any, table: str, label: str) -> Any:
    for header in browser.find_elements("css selector", f"{table} thead th"):
        if header.get_attribute("textContent") == label:
            return header
    raise AssertionError(f"no column {label!r} in {table}")


def _rows(browser: Any, table: str = "#board") -> list[str]:
    return _model_ids(browser.execute_script(_ROWS, table))


def test_clicking_a_header_sorts_the_rows(browser: Any, site_board: Site, site_url: str) -> None:
    from selenium.webdriver.common.keys import Keys

    _, board = site_board
    models = board.models
    order = [str(model) for model in models.index]
    browser.get(site_url + render_site.INDEX)
    assert _rows(browser) == order
    assert _header(browser, "#board", "#").get_attribute("aria-sort") == "ascending"

    mean = _header(browser, "#board", "Mean")
    mean.find_element("tag name", "button").click()
    assert _rows(browser) == _expected(models["mean_all"].tolist(), order, descending=True)
    assert mean.get_attribute("aria-sort") == "descending"
    assert _header(browser, "#board", "#").get_attribute("aria-sort") is None
    mean.find_element("tag name", "button").click()
    assert _rows(browser) == _expected(models["mean_all"].tolist(), order, descending=False)
    assert mean.get_attribute("aria-sort") == "ascending"

    names = [str(name).strip().lower() for name in models["display_name"]]
    _header(browser, "#board", "Model").find_element("tag name", "button").click()
    assert _rows(browser) == _expected(names, order, descending=False)

    # Keyboard: the header's button takes Enter.
    button = _header(browser, "#board", "Mean cls.").find_element("tag name", "button")
    button.send_keys(Keys.ENTER)
    classification = models["mean_classification"].tolist()
    assert _rows(browser) == _expected(classification, order, descending=True)
    assert _header(browser, "#board", "Mean cls.").get_attribute("aria-sort") == "descending"
    contaminated = [
        len(found) if known else None
        for found, known in zip(
            models["contaminated_tasks"], models["contamination_known"], strict=True
        )
    ]
    _header(browser, "#board", "Contaminated tasks").find_element("tag name", "button").click()
    assert _rows(browser) == _expected(contaminated, order, descending=False)

    parameters = [None if value is None else float(value) for value in models["parameters"]]
    _header(browser, "#board", "Parameters").find_element("tag name", "button").click()
    assert _rows(browser) == _expected(parameters, order, descending=True)
    assert _errors(browser) == []


def test_a_task_page_sorts_its_entries(browser: Any, site_board: Site, site_url: str) -> None:
    _, board = site_board
    btcv = board.entries["task_id"].eq("btcv").to_numpy()
    models = board.entries["model_id"].to_numpy()[btcv].tolist()
    ranks = board.entries["rank"].to_numpy()[btcv].tolist()
    # Best first, equal ranks in leaderboard order (the entries' order).
    by_rank = [m for _, _, m in sorted(zip(ranks, range(len(models)), models, strict=True))]
    browser.get(site_url + render_site.task_page("btcv"))
    assert _rows(browser, "#entries") == by_rank
    _header(browser, "#entries", "Model").find_element("tag name", "button").click()
    name_of = {
        str(model): str(name).lower()
        for model, name in zip(
            board.entries["model_id"], board.entries["display_name"], strict=True
        )
    }
    names = [name_of[model] for model in by_rank]
    assert _rows(browser, "#entries") == _expected(names, by_rank, descending=False)
    # The interval's lower bound, from the per-case scores; entries without any go last.
    intervals = stats.bootstrap_intervals(
        "btcv",
        builtin_registry().get("btcv").metric_spec,
        {model: table for (model, task), table in board.case_scores.items() if task == "btcv"},
    ).set_index("model_id")
    lows = [intervals.at[m, "low"] if m in intervals.index else None for m in by_rank]
    assert sum(low is not None for low in lows) == 2
    _header(browser, "#entries", "95% CI").find_element("tag name", "button").click()
    assert _rows(browser, "#entries") == _expected(lows, by_rank, descending=True)
    assert _errors(browser) == []


def test_filters_hide_the_right_rows_and_columns(
    browser: Any, site_board: Site, site_url: str
) -> None:
    from selenium.webdriver.support.ui import Select

    _, board = site_board
    order = [str(model) for model in board.models.index]
    types = board.entries.groupby("model_id")["task_type"].agg(set)
    browser.get(site_url + render_site.INDEX)
    kind = Select(browser.find_element("id", "filter-type"))
    contamination = Select(browser.find_element("id", "filter-contamination"))
    status = browser.find_element("id", "filter-status")
    assert status.text == f"{len(order)} of {len(order)} models shown"

    kind.select_by_value("classification")
    expected = [model for model in order if "classification" in types[model]]
    assert _rows(browser) == expected
    assert status.text == f"{len(expected)} of {len(order)} models shown"
    # The other type's mean is hidden, with all its cells.
    assert not _header(browser, "#board", "Mean seg.").is_displayed()
    assert _header(browser, "#board", "Mean cls.").is_displayed()
    assert _header(browser, "#board", "Mean").is_displayed()
    cells = browser.find_elements("css selector", "#board tbody td:nth-child(6)")
    assert cells and not any(cell.is_displayed() for cell in cells)

    kind.select_by_value("")
    models = board.models
    contaminated = {
        str(model): bool(found)
        for model, found, known in zip(
            models.index, models["contaminated_tasks"], models["contamination_known"], strict=True
        )
        if known
    }
    contamination.select_by_value("some")
    assert _rows(browser) == [model for model in order if contaminated.get(model) is True]
    assert _rows(browser) == ["coralbay", "organ_probe"]
    contamination.select_by_value("none")
    assert _rows(browser) == [model for model in order if contaminated.get(model) is False]
    contamination.select_by_value("unknown")
    assert _rows(browser) == [model for model in order if model not in contaminated]
    assert _header(browser, "#board", "Mean seg.").is_displayed()

    kind.select_by_value("segmentation")  # both filters at once
    assert _rows(browser) == [
        model for model in order if model not in contaminated and "segmentation" in types[model]
    ]
    assert _errors(browser) == []


def test_a_screenshot_is_not_blank(browser: Any, site_url: str) -> None:
    from PIL import Image, ImageStat

    browser.get(site_url + render_site.INDEX)
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 10  # None: more colours than that
    assert max(ImageStat.Stat(image).stddev) > 10


def test_pages_work_from_the_file_system(browser: Any, site_board: Site) -> None:
    root, board = site_board
    index = (root / render_site.FOLDER / render_site.INDEX).resolve().as_uri()
    browser.get(index)
    assert _errors(browser) == []
    assert browser.execute_script("return Array.from(document.images).every(i => i.naturalWidth)")
    _header(browser, "#board", "Mean rank").find_element("tag name", "button").click()
    ranks = board.models["mean_rank"].tolist()
    order = [str(model) for model in board.models.index]
    assert _rows(browser) == _expected(ranks, order, descending=False)
    browser.find_element("link text", "BTCV").click()
    assert browser.current_url.endswith("/tasks/btcv.html")
    assert _errors(browser) == []


_ROW_NAMES = """
return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))
  .map(row => row.querySelector('th').textContent);
"""


def test_the_views_beside_the_ranking_sort_their_tables(
    browser: Any, site_board: Site, site_url: str
) -> None:
    _, board = site_board
    frame = board.robustness
    names = list(dict.fromkeys(frame["display_name"]))
    browser.get(site_url + render_site.ROBUSTNESS)
    assert browser.execute_script(_ROW_NAMES, "#robustness-cosine") == names
    lung = frame[frame["perturbation"] == "window_lung"].set_index("display_name")["mean_cosine"]
    flips = frame[frame["perturbation"] == "flip_left_right"].set_index("display_name")
    for label, values in (("window_lung", lung), ("flip_left_right", flips["mean_cosine"])):
        _header(browser, "#robustness-cosine", label).find_element("tag name", "button").click()
        expected = _expected([values.get(name) for name in names], names, descending=True)
        assert browser.execute_script(_ROW_NAMES, "#robustness-cosine") == expected, label
    browser.get(site_url + render_site.LABEL_EFFICIENCY)
    curves = board.label_efficiency
    models = list(dict.fromkeys(curves["display_name"]))
    five = curves[curves["labels"] == 5].set_index("display_name")["mean"]
    _header(browser, "#curve-0", "5").find_element("tag name", "button").click()
    expected = _expected([five.get(name) for name in models], models, descending=True)
    assert browser.execute_script(_ROW_NAMES, "#curve-0") == expected
    assert _errors(browser) == []
