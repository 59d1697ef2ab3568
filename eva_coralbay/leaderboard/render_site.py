"""The leaderboard's static website: an index, a page per task and a page per model.

Every page works from the file system (file://) and from any static host: links are relative,
the stylesheet and the small script are written beside the pages, and nothing is fetched from
the network. The tables are complete HTML; the script only adds sorting and filtering. The same
board gives the same bytes (no build time is written anywhere).
"""

from __future__ import annotations

import html
import pathlib
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard import render_markdown, render_sizes, stats, tasks
from eva_coralbay.leaderboard.aggregate import Board
from eva_coralbay.leaderboard.metrics import METRICS
from eva_coralbay.leaderboard.record import History, Submission
from eva_coralbay.leaderboard.variants import FULL_LABELS, count_unit

FOLDER = "site"
"""The site's folder under the leaderboard root."""

INDEX = "index.html"
HEATMAP = "heatmap.svg"
SIZES = "sizes.svg"
LABEL_EFFICIENCY = "label-efficiency.html"
"""The label-efficiency view; written only when the board has variants."""
CURVES = "label_efficiency.svg"
"""Its plot (the build writes the same bytes beside the README)."""
ROBUSTNESS = "robustness.html"
"""The robustness view; written only when the board has robustness records."""
ASSETS = ("site.css", "site.js")
"""The stylesheet and script, shipped in `site_assets/` and written to `assets/`."""

MISSING = render_markdown.MISSING
CONTAMINATED = render_markdown.CONTAMINATED
TIED = render_markdown.TIED
TITLE = "3D radiology leaderboard"


def _escape(value: Any) -> str:
    return html.escape(str(value))


def _escape_all(values: Iterable[Any]) -> list[str]:
    """`_escape` of each value, once per distinct value (names and dates repeat a lot)."""
    memo: dict[Any, str] = {}
    found = []
    for value in values:
        text = memo.get(value)
        if text is None:
            text = memo[value] = html.escape(str(value))
        found.append(text)
    return found


def _objects(series: pd.Series) -> list[Any]:
    """A column as Python objects, None where missing (pandas' strings have NaN there).

    Iterating pandas' arrow-backed strings directly is 10x slower.
    """
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values.tolist()


def _fixed(values: Iterable[Any], digits: int) -> list[str]:
    """Numbers with `digits` decimals; the missing mark for None and NaN."""
    return [
        MISSING if value is None or value != value else f"{value:.{digits}f}"  # NaN != NaN
        for value in values
    ]


def task_page(task_id: str) -> str:
    """The path of a task's page, relative to the site folder."""
    return f"tasks/{task_id}.html"


def model_page(model_id: str) -> str:
    """The path of a model's page, relative to the site folder."""
    return f"models/{model_id}.html"


def _number(value: Any, digits: int = 3) -> str:
    return MISSING if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def _data_value(value: Any) -> str:
    """A sort key for `data-v`: the number, or empty (sorted last) when missing."""
    return "" if value is None or pd.isna(value) else repr(float(value))


def _prose(text: str) -> str:
    """Escaped text with its `code` spans (the registry's descriptions are markdown)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _escape(text))


def _link(url: Any, text: Any) -> str:
    """A link to an outside page, or the plain text when `url` is not a web address."""
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return f'<a href="{_escape(url)}">{_escape(text)}</a>'
    return _escape(text)


def _header(
    label: str,
    kind: str = "num",
    first: str = "ascending",
    *,
    sorted_as: str | None = None,
    attributes: str = "",
) -> str:
    """A sortable column header: a button inside `<th scope="col">`.

    Args:
        label: The (already escaped) header text.
        kind: "num" (sorted by number, missing last) or "text".
        first: The direction of the first click ("descending" for scores, where higher is
            better).
        sorted_as: The table's current order by this column, if it is sorted by it.
        attributes: More attributes of the `<th>`, with a leading space.
    """
    sort = f' aria-sort="{sorted_as}"' if sorted_as else ""
    return (
        f'<th scope="col" data-sort="{kind}" data-first="{first}"{sort}{attributes}>'
        f'<button type="button">{label}</button></th>'
    )


def _table(table_id: str, caption: str, headers: Iterable[str], rows: Iterable[str]) -> str:
    """A sortable table in a scrollable, keyboard-focusable region."""
    return (
        f'<div class="scroll" role="region" aria-labelledby="{table_id}-caption" tabindex="0">\n'
        f'<table id="{table_id}" class="sortable">\n'
        f'<caption id="{table_id}-caption">{caption}</caption>\n'
        f"<thead><tr>{''.join(headers)}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n</div>"
    )


def _page(title: str, body: str, *, depth: int) -> bytes:
    """A whole page; `depth` is how many folders below the site folder it lives."""
    up = "../" * depth
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_escape(title)}</title>\n"
        # An empty icon: otherwise browsers ask the server for /favicon.ico and log a 404.
        '<link rel="icon" href="data:,">\n'
        f'<link rel="stylesheet" href="{up}assets/site.css">\n'
        f'<script src="{up}assets/site.js" defer></script>\n'
        "</head>\n<body>\n"
        '<a class="skip" href="#main">Skip to the content</a>\n'
        '<header class="site"><nav aria-label="Leaderboard">'
        f'<a href="{up}{INDEX}">{TITLE}</a> <a href="{up}{INDEX}#tasks">Tasks</a> '
        f'<a href="{up}{INDEX}#sources">Sources</a> <a href="{up}{INDEX}#legend">How to read</a>'
        "</nav></header>\n"
        f'<main id="main">\n{body}\n</main>\n'
        "<footer>Generated by <code>coralbay leaderboard build</code> from the leaderboard's "
        "submissions; do not edit.</footer>\n"
        "</body>\n</html>\n"
    ).encode()


def _task_name(task: tasks.Task) -> str:
    synthetic = task.synthetic and "synthetic" not in task.display_name
    return _escape(task.display_name) + (" (synthetic)" if synthetic else "")


class _Cells:
    """The HTML of every entry, computed once for all pages.

    Arrays are aligned with `board.entries`; a 1,000 x 30 board has 30,000 entries, so each
    piece is made in one pass over plain Python lists.
    """

    def __init__(self, board: Board, labels: dict[tuple[str, str], str]) -> None:
        entries = board.entries
        self.model_ids: list[str] = _objects(entries["model_id"])
        self.task_ids: list[str] = _objects(entries["task_id"])
        self.names = _escape_all(_objects(entries["display_name"]))
        self.position = {
            key: i for i, key in enumerate(zip(self.model_ids, self.task_ids, strict=True))
        }
        """The entry of (model id, task id)."""
        kinds = _objects(entries["kind"])
        runs = [kind == "run" for kind in kinds]
        mean = entries["mean"].astype(float)
        reported = render_markdown.reported_text(mean).to_numpy(dtype=object).tolist()
        marks = [
            # Non-breaking spaces: a mark never wraps onto a line of its own.
            (f"&nbsp;{TIED}" if tied is True else "")
            + (f"&nbsp;{CONTAMINATED}" if flag is True else "")
            for tied, flag in zip(
                _objects(entries["tied_with_best"]), _objects(entries["contaminated"]), strict=True
            )
        ]
        self.best: list[bool] = entries["best"].astype(bool).tolist()
        self.score = [
            ("<b>" if best else "")
            + (f"{value:.3f}" if run else text)
            + ("</b>" if best else "")
            + mark
            for value, text, run, best, mark in zip(
                mean.tolist(),
                reported,
                runs,
                self.best,
                marks,
                strict=True,
            )
        ]
        self.stdev = [
            f"{value:.3f}" if run and n_runs > 1 else MISSING  # one run has no spread
            for value, run, n_runs in zip(
                entries["stdev"].astype(float).fillna(0.0).tolist(),
                runs,
                entries["n_runs"].astype(float).fillna(0.0).tolist(),
                strict=True,
            )
        ]
        self.n_runs = [
            MISSING if n is None or n != n else str(int(n)) for n in _objects(entries["n_runs"])
        ]
        self.rank: list[float] = entries["rank"].astype(float).tolist()
        self.contaminated = [_flag_cell(flag) for flag in _objects(entries["contaminated"])]
        run_ids = _escape_all(_objects(entries["run_id"]))
        citations = _objects(entries["source_citation"])
        urls = _objects(entries["source_url"])
        self.source = [
            f"run <code>{run_id}</code>" if run else _source_link(labels, citation, url)
            for run, run_id, citation, url in zip(runs, run_ids, citations, urls, strict=True)
        ]
        protocol_memo: dict[Any, str] = {}
        self.protocol = []
        self.protocol_hashes: list[str | None] = _objects(entries["protocol_hash"])
        for value in self.protocol_hashes:
            if value not in protocol_memo:
                protocol_memo[value] = (
                    f'<code title="{_escape(value)}">{_escape(value[:12])}</code>'
                    if isinstance(value, str)
                    else MISSING
                )
            self.protocol.append(protocol_memo[value])
        self.tie = [
            _tie_cell(best, tied, p_value)
            for best, tied, p_value in zip(
                self.best,
                _objects(entries["tied_with_best"]),
                entries["p_value_vs_best"].astype(float).tolist(),
                strict=True,
            )
        ]
        self.date = _escape_all(_objects(entries["date"]))
        intervals = _intervals(board)
        missing_interval = _interval_cell(None)
        self.interval = [
            _interval_cell(intervals[key]) if key in intervals else missing_interval
            for key in zip(self.model_ids, self.task_ids, strict=True)
        ]


def _source_link(labels: dict[tuple[str, str], str], citation: Any, url: Any) -> str:
    """The label of a published number's source, linked to the index's list of sources."""
    label = labels[(citation, url or "")]
    return f'published, <a href="../{INDEX}#source-{label}" title="{_escape(citation)}">{label}</a>'


def _flag_cell(flag: Any) -> str:
    """The contamination cell: yes (1), no (0) or ? (undeclared, sorted last)."""
    if flag is True:
        return '<td data-v="1">yes</td>'
    if flag is False:
        return '<td data-v="0">no</td>'
    return '<td data-v="">?</td>'


def _tie_cell(best: bool, tied: Any, p_value: float) -> str:
    if best:
        return '<td data-v="1">best</td>'
    if tied is None or np.isnan(p_value):
        return f'<td data-v="">{MISSING}</td>'
    p = "p &lt; 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    text = f"{TIED} tied, {p}" if tied else f"differs, {p}"
    return f'<td data-v="{_data_value(p_value)}">{text}</td>'


def _interval_cell(interval: tuple[float, float] | None) -> str:
    if interval is None or np.isnan(interval[0]):
        return f'<td data-v="">{MISSING}</td>'
    low, high = interval
    return f'<td data-v="{_data_value(low)}">{low:.3f}&ndash;{high:.3f}</td>'


def _intervals(board: Board) -> dict[tuple[str, str], tuple[float, float]]:
    """The bootstrap confidence interval of every entry with per-case scores."""
    by_task: dict[str, dict[str, pd.DataFrame]] = {}
    for (model, task), table in board.case_scores.items():
        by_task.setdefault(task, {})[model] = table
    found = {}
    for task_id, scores in sorted(by_task.items()):
        metric = board.registry.get(task_id).metric_spec
        frame = stats.bootstrap_intervals(task_id, metric, scores)
        for model, low, high in frame.itertuples(index=False):
            found[(str(model), task_id)] = (float(low), float(high))
    return found


def _contamination_by_task(board: Board) -> dict[str, list[bool | None]]:
    """Model -> for each board task: True, False or None (pretraining undeclared)."""
    undeclared: list[bool | None] = [None] * len(board.tasks)
    flags_of: dict[tuple[str, ...], list[bool | None]] = {}
    found = {}
    for model, pretraining in zip(
        board.models.index, board.models["pretraining_datasets"], strict=True
    ):
        if pretraining is None:
            found[str(model)] = undeclared
            continue
        key = tuple(map(str, pretraining))
        if key not in flags_of:
            flags_of[key] = [board.registry.is_contaminated(task, key) for task in board.tasks]
        found[str(model)] = flags_of[key]
    return found


def render(
    board: Board,
    history: History,
    heatmap_svg: bytes,
    heatmap_models: int,
    curves_svg: bytes | None = None,
) -> dict[str, bytes]:
    """Renders the whole site.

    Args:
        board: The aggregated tables.
        history: Replaced entries and their files.
        heatmap_svg: The heatmap the build drew, copied into the site.
        heatmap_models: How many models the heatmap shows at most.
        curves_svg: The label-efficiency plot the build drew, if the board has variants.

    Returns:
        Each file's bytes by its path relative to the site folder.
    """
    labels = render_markdown.source_labels(board.entries, history)
    cells = _Cells(board, labels)
    files: dict[str, bytes] = {
        f"assets/{name}": resources.files("eva_coralbay.leaderboard")
        .joinpath(f"site_assets/{name}")
        .read_bytes()
        for name in ASSETS
    }
    files[INDEX] = _index(board, labels, cells, min(len(board.models), heatmap_models))
    files[HEATMAP] = heatmap_svg
    files[SIZES] = render_sizes.render(board)
    files.update(_task_pages(board, cells))
    files.update(_model_pages(board, history, labels, cells))
    if not board.label_efficiency.empty:
        files[LABEL_EFFICIENCY] = _label_efficiency_page(board, curves_svg is not None)
        if curves_svg is not None:
            files[CURVES] = curves_svg
    if not board.robustness.empty:
        files[ROBUSTNESS] = _robustness_page(board)
    return files


# --- label-efficiency.html and robustness.html -----------------------------------------------


def _views_section(board: Board) -> str | None:
    """The index's links to the views beside the ranking, where the board has them."""
    items = []
    if not board.label_efficiency.empty:
        items.append(
            f'<li><a href="{LABEL_EFFICIENCY}">Label efficiency</a>: score against the number '
            "of labelled training cases (or samples per class), per task and model.</li>"
        )
    if not board.robustness.empty:
        items.append(
            f'<li><a href="{ROBUSTNESS}">Robustness</a>: how far each model\'s whole-scan '
            "embedding moves under HU-window, grid, orientation and flip changes.</li>"
        )
    if not items:
        return None
    return (
        '<section id="views" aria-labelledby="views-title">\n'
        '<h2 id="views-title">Beside the ranking</h2>\n<ul>\n'
        + "\n".join(items)
        + "\n</ul>\n</section>"
    )


def _model_link(model_id: str, name: str, board: Board) -> str:
    """A model's name, linked to its page when it has one (a model with full-label entries)."""
    if model_id in board.models.index:
        return f'<a href="{model_page(model_id)}">{name}</a>'
    return name


def _point_cell(point: render_markdown.CurvePoint | None) -> str:
    if point is None:
        return f'<td data-v="">{MISSING}</td>'
    return f'<td data-v="{_data_value(point.mean)}">{_escape(point.text())}</td>'


def _label_efficiency_page(board: Board, with_plot: bool) -> bytes:
    sections = [
        "<h1>Label efficiency</h1>",
        f"<p>{_prose(render_markdown.LABEL_EFFICIENCY_NOTE)}</p>",
    ]
    if with_plot:
        sections.append(
            f'<figure><img src="{CURVES}" alt="Per task, each model\'s score against its number '
            "of labelled training cases or samples per class; the tables below hold the same "
            'numbers."><figcaption>Score against labelled training data; the last point of '
            "each curve is the full-label entry.</figcaption></figure>"
        )
    for number, grid in enumerate(render_markdown.label_efficiency_grids(board)):
        task = grid.task
        first = "descending" if task.direction == "higher" else "ascending"
        headers = [_header("Model", "text")] + [
            _header(FULL_LABELS if count is None else str(count), first=first)
            for count in grid.counts
        ]
        rows = [
            f'<tr><th scope="row">{_model_link(model, _escape(name), board)}</th>'
            + "".join(_point_cell(grid.points.get((model, count))) for count in grid.counts)
            + "</tr>"
            for model, name in grid.models
        ]
        caption = (
            f'<a href="{task_page(task.id)}">{_task_name(task)}</a>: '
            f"{_escape(task.metric_spec.display_name)} by {count_unit(task.type)} "
            f"({FULL_LABELS}: the full-label entry)"
        )
        sections.append(
            f'<section id="task-{_escape(task.id)}">\n'
            f"{_table(f'curve-{number}', caption, headers, rows)}\n</section>"
        )
    return _page(f"Label efficiency · {TITLE}", "\n".join(sections), depth=0)


def _robustness_page(board: Board) -> bytes:
    frame = board.robustness
    models = frame.drop_duplicates("model_id").set_index("model_id")
    sections = ["<h1>Robustness</h1>", f"<p>{_prose(render_markdown.ROBUSTNESS_NOTE)}</p>"]
    tables = [("mean_cosine", "Mean cosine to the unperturbed embedding", "robustness-cosine")]
    if frame["probe_accuracy_change"].notna().any():
        tables.append(("probe_accuracy_change", "Change in probe accuracy", "robustness-probe"))
    for value, title, table_id in tables:
        grid = render_markdown.robustness_grid(board, value)
        headers = [
            _header("Model", "text"),
            _header("Backbone", "text"),
            _header("Scans", first="descending"),
            _header("Date", "text"),
        ] + [_header(f"<code>{_escape(name)}</code>", first="descending") for name in grid.columns]
        rows = []
        for model in grid.index:
            details = models.loc[model]
            name = _model_link(str(model), _escape(details["display_name"]), board)
            rows.append(
                f'<tr><th scope="row">{name}</th>'
                f"<td><code>{_escape(details['registry_name'])}</code></td>"
                f"<td>{int(details['n_scans'])}</td><td>{_escape(details['date'])}</td>"
                + "".join(
                    f'<td data-v="{_data_value(number)}">{_number(number)}</td>'
                    for number in grid.loc[model].tolist()
                )
                + "</tr>"
            )
        sections.append(_table(table_id, title, headers, rows))
    return _page(f"Robustness · {TITLE}", "\n".join(sections), depth=0)


# --- index.html ----------------------------------------------------------------------------


def _summary_cells(values: list[float], digits: int) -> list[str]:
    """Cells of an overall column: the rounded value, sorted by the exact one.

    Two means that round alike still sort in the order that ranks them.
    """
    return [
        f'<td data-v="{_data_value(value)}">{text}</td>'
        for value, text in zip(values, _fixed(values, digits), strict=True)
    ]


def _index(board: Board, labels: dict[tuple[str, str], str], cells: _Cells, shown: int) -> bytes:
    models = board.models
    n_scored = len(board.scored_tasks)
    model_ids: list[str] = [str(model) for model in models.index]
    row_of = {model: row for row, model in enumerate(model_ids)}
    # The task types each model has a result in, for the type filter.
    types_of: list[set[str]] = [set() for _ in model_ids]
    for model, task_type in zip(cells.model_ids, _objects(board.entries["task_type"]), strict=True):
        types_of[row_of[model]].add(task_type)
    contamination = []
    for known, found in zip(
        _objects(models["contamination_known"]), _objects(models["contaminated_tasks"]), strict=True
    ):
        if not known:
            contamination.append('<td data-v="">?</td>')
        else:
            text = f"{CONTAMINATED} " + ", ".join(found) if found else "none"
            contamination.append(f'<td data-v="{len(found)}">{_escape(text)}</td>')
    parameters = _objects(models["parameters"])
    columns = zip(
        model_ids,
        _escape_all(_objects(models["display_name"])),
        render_sizes.contamination_state(board).tolist(),
        [_data_value(value) for value in parameters],
        [render_markdown.parameters_text(value) for value in parameters],
        _fixed(_objects(models["embedding_dim"]), 0),
        *(
            _summary_cells(models[column].astype(float).tolist(), digits)
            for column, digits in (
                ("mean_all", 3),
                ("mean_segmentation", 3),
                ("mean_classification", 3),
                ("mean_rank", 2),
            )
        ),
        models["n_tasks"].tolist(),
        contamination,
        types_of,
        strict=True,
    )
    rows = [
        f'<tr data-types="{" ".join(k for k in tasks.TASK_TYPES if k in types)}" '
        f'data-contamination="{state}"><td>{position}</td>'
        f'<th scope="row"><a href="{model_page(model)}">{name}</a></th>'
        f'<td data-v="{parameter_value}">{parameter_text}</td><td>{embedding}</td>'
        f"{mean}{segmentation}{classification}{rank}"
        f"<td>{n_tasks}/{n_scored}</td>{contaminated}</tr>"
        for position, (
            model,
            name,
            state,
            parameter_value,
            parameter_text,
            embedding,
            mean,
            segmentation,
            classification,
            rank,
            n_tasks,
            contaminated,
            types,
        ) in enumerate(columns, start=1)
    ]
    headers = [
        _header("#", sorted_as="ascending"),
        _header("Model", "text"),
        _header("Parameters", first="descending"),
        _header("Embedding size", first="descending"),
        _header("Mean", first="descending"),
        _header("Mean seg.", first="descending", attributes=' data-task-type="segmentation"'),
        _header("Mean cls.", first="descending", attributes=' data-task-type="classification"'),
        _header("Mean rank"),
        _header("Tasks", first="descending"),
        _header("Contaminated tasks"),
    ]
    types_present = [kind for kind in tasks.TASK_TYPES if any(t.type == kind for t in board.tasks)]
    type_options = "".join(f'<option value="{kind}">{kind}</option>' for kind in types_present)
    filters = (
        '<form class="filters" id="filters" data-table="board" hidden>\n'
        '<label>Task type <select id="filter-type">'
        f'<option value="">all</option>{type_options}</select></label>\n'
        '<label>Contamination <select id="filter-contamination">'
        '<option value="">all models</option>'
        '<option value="none">no contaminated task</option>'
        '<option value="some">pretrained on a task\'s images</option>'
        '<option value="unknown">pretraining data not declared</option></select></label>\n'
        '<p id="filter-status" role="status" aria-live="polite"></p>\n'
        "</form>"
    )
    counts = (
        f"{len(models)} models, {len(board.tasks)} tasks, {len(board.entries)} entries. "
        'Frozen encoders evaluated with <a href="https://github.com/kaiko-ai/eva">eva</a>: '
        "segmentation by a trained decoder (Dice), classification by a linear probe (balanced "
        "accuracy)."
    )
    parts = [
        f"<h1>{TITLE}</h1>",
        f"<p>{counts}</p>",
        '<section id="overall" aria-labelledby="overall-title">',
        '<h2 id="overall-title">Overall</h2>',
        "<p>Means are over the scored tasks a model has results on (column <i>Tasks</i>); "
        "mean seg. and mean cls. are the means over its segmentation and classification "
        "tasks. Click a column header to sort by it. The task type filter shows the models "
        "with a result of that type, and that type's mean; the contamination filter, the "
        "models by what they were pretrained on. Every score of every task is on the task "
        'pages (see <a href="#tasks">Tasks</a>), every score of a model on its page; marks '
        'are explained under <a href="#legend">How to read</a>.</p>',
        filters,
        _table("board", "Every model, in leaderboard order", headers, rows),
        "</section>",
        '<section id="heatmap" aria-labelledby="heatmap-title">',
        '<h2 id="heatmap-title">Heatmap</h2>',
        f'<figure><img src="{HEATMAP}" alt="Heatmap of the scores of the first {shown} '
        'models on every task; the table above holds the same numbers.">'
        "<figcaption>Scores of the first models in leaderboard order, one column per "
        "task.</figcaption></figure>",
        "</section>",
        '<section id="sizes" aria-labelledby="sizes-title">',
        '<h2 id="sizes-title">Model size and score</h2>',
        f'<figure><img src="{SIZES}" alt="Scatter plot of each model\'s mean score against '
        'its parameter count, or its embedding size where the parameters are not stated.">'
        "<figcaption>Mean score against parameters (embedding size where the parameter "
        "count is not stated), coloured by contamination.</figcaption></figure>",
        "</section>",
        _tasks_section(board, cells),
        _views_section(board),
        _sources_section(board, labels),
        _legend(board),
    ]
    body = "\n".join(part for part in parts if part)
    return _page(TITLE, body, depth=0)


def _tasks_section(board: Board, cells: _Cells) -> str:
    counts: dict[str, int] = {}
    best: dict[str, list[str]] = {}
    for model, task_id, name, is_best in zip(
        cells.model_ids, cells.task_ids, cells.names, cells.best, strict=True
    ):
        counts[task_id] = counts.get(task_id, 0) + 1
        if is_best:  # every model with the best mean, in leaderboard order
            best.setdefault(task_id, []).append(f'<a href="{model_page(model)}">{name}</a>')
    rows = []
    for task in board.tasks:
        licence = task.license or MISSING
        rows.append(
            f'<tr><th scope="row"><a href="{task_page(task.id)}">{_task_name(task)}</a></th>'
            f"<td>{task.type}</td><td>{_escape(task.metric_spec.display_name)}</td>"
            f"<td>{counts[task.id]}</td><td>{', '.join(best.get(task.id, [MISSING]))}</td>"
            f"<td>{_escape(licence)}</td></tr>"
        )
    headers = [
        _header("Task", "text"),
        _header("Type", "text"),
        _header("Metric", "text"),
        _header("Entries", first="descending"),
        _header("Best model", "text"),
        _header("Data licence", "text"),
    ]
    return (
        '<section id="tasks" aria-labelledby="tasks-title">\n<h2 id="tasks-title">Tasks</h2>\n'
        + _table("task-list", "Every task with an entry", headers, rows)
        + "\n</section>"
    )


def _sources_section(board: Board, labels: dict[tuple[str, str], str]) -> str:
    entries = board.entries
    items = []
    for (citation, url), label in sorted(labels.items(), key=lambda item: int(item[1][1:])):
        mask = entries["source_citation"].eq(citation) & entries["source_url"].fillna("").eq(url)
        items.append(
            f'<li id="source-{label}"><b>{label}</b>: {_link(url, citation)} '
            f"({int(mask.sum())} current entries)</li>"
        )
    runs = int(entries["kind"].eq("run").sum())
    if runs:
        items.append(
            f'<li id="source-runs"><b>Runs</b>: eva runs submitted with <code>coralbay '
            f"leaderboard submit</code> ({runs} current entries)</li>"
        )
    return (
        '<section id="sources" aria-labelledby="sources-title">\n'
        '<h2 id="sources-title">Sources</h2>\n<p>Where each number comes from: a run submitted '
        "from eva's output, or a published table (S1, S2, ...).</p>\n<ul>\n"
        + "\n".join(items)
        + "\n</ul>\n</section>"
    )


def _legend(board: Board) -> str:
    metrics_used = sorted({task.metric for task in board.tasks})
    items = [
        "Rows are in leaderboard order: by the number of tasks, then by mean rank (rank 1 = best "
        "on a task, ties share the average rank), then by mean. A model with fewer tasks is not "
        "comparable on its mean.",
        f"{MISSING}: no result. <b>Bold</b>: best mean on the task.",
        "± s: standard deviation over eva's runs. A published number has no per-run values and "
        "no standard deviation; its source is named on the task and model pages.",
        f"{CONTAMINATED}: the model was pretrained on images of this task (from its declared "
        "pretraining datasets and the task's image sources). ? : pretraining data not declared.",
        f"{TIED}: not significantly different from the best entry of the task (paired "
        f"bootstrap of per-case scores, {stats.RESAMPLES} resamples, Holm-corrected, alpha = "
        f"{stats.ALPHA}); only where both entries have per-case scores. The task pages give "
        f"{stats.LEVEL:.0%} bootstrap confidence intervals from the same scores.",
    ]
    items += [
        f"{_escape(METRICS[m].display_name)}: {_prose(METRICS[m].description)}."
        for m in metrics_used
    ]
    return (
        '<section id="legend" aria-labelledby="legend-title">\n'
        '<h2 id="legend-title">How to read</h2>\n<ul>\n'
        + "\n".join(f"<li>{item}</li>" for item in items)
        + "\n</ul>\n</section>"
    )


# --- tasks/<id>.html -----------------------------------------------------------------------


def _task_pages(board: Board, cells: _Cells) -> dict[str, bytes]:
    positions_of: dict[str, list[int]] = {}
    for i, task_id in enumerate(cells.task_ids):
        positions_of.setdefault(task_id, []).append(i)
    pages = {}
    for task in board.tasks:
        # Best first; entries of equal rank keep the leaderboard order.
        positions = sorted(positions_of[task.id], key=lambda i: (cells.rank[i], i))
        rows = [
            f'<tr id="model-{cells.model_ids[i]}">'
            f"<td>{cells.rank[i]:g}</td>"
            f'<th scope="row"><a href="../{model_page(cells.model_ids[i])}">'
            f"{cells.names[i]}</a></th>"
            f"<td>{cells.score[i]}</td><td>{cells.stdev[i]}</td><td>{cells.n_runs[i]}</td>"
            f"{cells.interval[i]}{cells.tie[i]}{cells.contaminated[i]}"
            f"<td>{cells.source[i]}</td><td>{cells.protocol[i]}</td><td>{cells.date[i]}</td></tr>"
            for i in positions
        ]
        first = "descending" if task.direction == "higher" else "ascending"
        headers = [
            _header("Rank", sorted_as="ascending"),
            _header("Model", "text"),
            _header(_escape(task.metric_spec.display_name), first=first),
            _header("± s"),
            _header("Runs", first="descending"),
            _header(f"{stats.LEVEL:.0%} CI", first=first),
            _header("Tie with best", first="descending"),
            _header("Contaminated"),
            _header("Source", "text"),
            _header("Protocol", "text"),
            _header("Date", "text"),
        ]
        body = "\n".join(
            [
                f"<h1>{_task_name(task)}</h1>",
                _task_card(task, positions, cells),
                '<section id="scores" aria-labelledby="scores-title">',
                '<h2 id="scores-title">Scores</h2>',
                _TASK_SCORES_NOTE,
                _table("entries", f"Every entry on {_task_name(task)}, best first", headers, rows),
                "</section>",
                _per_class_section(task, board, positions, cells),
            ]
        )
        pages[task_page(task.id)] = _page(f"{task.display_name} · {TITLE}", body, depth=1)
    return pages


_TASK_SCORES_NOTE = (
    "<p>Rank 1 is the best mean (equal means share the average rank). ± s: standard deviation "
    f"over eva's runs. {stats.LEVEL:.0%} CI: percentile bootstrap interval of the task "
    f"statistic over the entry's per-case scores ({stats.RESAMPLES} resamples of the cases). "
    f"Tie with best: paired bootstrap test against the best entry, Holm-corrected; {TIED} "
    f"where not significant at {stats.ALPHA}. Both need per-case scores. {CONTAMINATED}: "
    "pretrained on this task's images. Source: the submitted eva run, or the published table "
    'it was copied from (see <a href="../index.html#sources">Sources</a>).</p>'
)


def _task_card(task: tasks.Task, positions: list[int], cells: _Cells) -> str:
    licence = task.license or "not stated"
    title = task.title or task.display_name
    distinct = sorted(
        {value for i in positions if isinstance(value := cells.protocol_hashes[i], str)}
    )
    if not distinct:
        protocols = "no submitted runs (published numbers only)"
    elif len(distinct) == 1:
        protocols = f"one protocol for every run: <code>{_escape(distinct[0])}</code>"
    else:
        protocols = f"{len(distinct)} different protocols among the runs (see the table)"
    metric = task.metric_spec
    facts = [
        ("Task id", f"<code>{_escape(task.id)}</code>"),
        ("Benchmark", _escape(title) + (" (synthetic data)" if task.synthetic else "")),
        ("Type", task.type),
        (
            "Metric",
            f"{_escape(metric.display_name)} ({metric.direction} is better): "
            f"{_prose(metric.description)}",
        ),
        ("eva metric key", f"<code>{_escape(task.eva_metric)}</code>"),
        ("Images from", _escape(", ".join(task.image_sources)) or MISSING),
        ("Data licence", _escape(licence)),
        ("Citation", _link(task.url, task.citation)),
        ("Protocol hash", protocols),
        ("Entries", str(len(positions))),
    ]
    return _facts(facts)


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    return (
        '<dl class="card">\n'
        + "\n".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
        + "\n</dl>"
    )


def _class_order(task: tasks.Task, found: set[str]) -> list[str]:
    known = [name for name in task.classes if name in found]
    return known + sorted(found - set(known))


def _per_class_section(task: tasks.Task, board: Board, positions: list[int], cells: _Cells) -> str:
    scored = [
        (i, board.case_scores[(cells.model_ids[i], task.id)])
        for i in positions
        if (cells.model_ids[i], task.id) in board.case_scores
    ]
    if not scored:
        return (
            '<section id="per-class" aria-labelledby="per-class-title">\n'
            '<h2 id="per-class-title">Per-class scores</h2>\n<p>No entry of this task submitted '
            "per-case scores.</p>\n</section>"
        )
    classes = _class_order(task, {str(name) for _, table in scored for name in table.columns})
    rows = []
    for i, table in scored:
        means = table.mean(axis=0)
        values = "".join(
            f"<td>{_number(means.get(name))}</td>" if name in means.index else f"<td>{MISSING}</td>"
            for name in classes
        )
        rows.append(
            f'<tr><th scope="row"><a href="../{model_page(cells.model_ids[i])}">'
            f"{cells.names[i]}</a></th><td>{len(table.index)}</td>{values}</tr>"
        )
    headers = [_header("Model", "text"), _header("Cases", first="descending")]
    headers += [_header(_escape(name), first="descending") for name in classes]
    return (
        '<section id="per-class" aria-labelledby="per-class-title">\n'
        '<h2 id="per-class-title">Per-class scores</h2>\n'
        "<p>The mean over cases of each class's score, from the entries' per-case score files "
        "(runs averaged).</p>\n"
        + _table("classes", f"Per-class {_escape(task.metric_spec.display_name)}", headers, rows)
        + "\n</section>"
    )


# --- models/<id>.html ----------------------------------------------------------------------


def _model_pages(
    board: Board, history: History, labels: dict[tuple[str, str], str], cells: _Cells
) -> dict[str, bytes]:
    task_names = {task.id: _task_name(task) for task in board.tasks}
    # Each entry's row on its model's page, keyed by model then task. Ranks and positions are
    # left to the index and the task pages: they move whenever any model is added, and a model's
    # page then stays the same until its own entries change (a rebuild rewrites little, and a
    # committed site's diffs stay small).
    row_of: dict[str, dict[str, str]] = {}
    types = {task.id: task.type for task in board.tasks}
    for i, (model, task_id) in enumerate(zip(cells.model_ids, cells.task_ids, strict=True)):
        row_of.setdefault(model, {})[task_id] = (
            f'<th scope="row"><a href="../{task_page(task_id)}#model-{model}">'
            f"{task_names[task_id]}</a></th><td>{types[task_id]}</td>"
            f"<td>{cells.score[i]}</td><td>{cells.stdev[i]}</td>{cells.interval[i]}"
        )
    tail_of: dict[str, dict[str, str]] = {}
    for i, (model, task_id) in enumerate(zip(cells.model_ids, cells.task_ids, strict=True)):
        tail_of.setdefault(model, {})[task_id] = (
            f"<td>{cells.source[i]}</td><td>{cells.date[i]}</td>"
        )
    missing_row = {
        task.id: f'<th scope="row"><a href="../{task_page(task.id)}">{task_names[task.id]}</a>'
        f"</th><td>{task.type}</td><td>{MISSING}</td><td>{MISSING}</td>"
        f'<td data-v="">{MISSING}</td>'
        for task in board.tasks
    }
    missing_tail = f"<td>{MISSING}</td><td>{MISSING}</td>"
    contamination = _contamination_by_task(board)
    old_by_model: dict[str, list[tuple[pathlib.Path, Submission]]] = {}
    for path, record in history:
        old_by_model.setdefault(record.model_id, []).append((path, record))
    headers = "".join(
        [
            _header("Task", "text"),
            _header("Type", "text"),
            _header("Score", first="descending"),
            _header("± s"),
            _header(f"{stats.LEVEL:.0%} CI", first="descending"),
            _header("Contaminated"),
            _header("Source", "text"),
            _header("Date", "text"),
        ]
    )
    records = board.models.to_dict("index")
    pages = {}
    n_scored = len(board.scored_tasks)
    for model, details in records.items():
        model = str(model)
        mine, tails = row_of.get(model, {}), tail_of.get(model, {})
        rows = [
            f"<tr>{mine.get(task.id, missing_row[task.id])}{_flag_cell(flag)}"
            f"{tails.get(task.id, missing_tail)}</tr>"
            for task, flag in zip(board.tasks, contamination[model], strict=True)
        ]
        name = _escape(details["display_name"])
        body = "\n".join(
            [
                f"<h1>{name}</h1>",
                _model_card(model, details, n_scored),
                '<section id="scores" aria-labelledby="scores-title">',
                '<h2 id="scores-title">Scores</h2>',
                "<p>One row per task of the leaderboard, with the contamination of each (the "
                "model's declared pretraining data against the task's image sources). The "
                "model's rank on a task is on the task's page (follow the task's name), its "
                f'position on the <a href="../{INDEX}#overall">index</a>.</p>',
                _table("entries", f"{name} on every task", [headers], rows),
                "</section>",
                _history_section(model, old_by_model.get(model, []), labels, cells, board.registry),
            ]
        )
        pages[model_page(model)] = _page(f"{details['display_name']} · {TITLE}", body, depth=1)
    return pages


def _model_card(model: str, details: dict[str, Any], n_scored: int) -> str:
    pretraining = details["pretraining_datasets"]
    sha = details["weights_sha256"]
    weights = details["weights_source"]
    registry = details["registry_name"]
    facts = [
        ("Model id", f"<code>{_escape(model)}</code>"),
        ("Registry name", MISSING if registry is None else f"<code>{_escape(registry)}</code>"),
        ("Parameters", render_markdown.parameters_text(details["parameters"])),
        ("Embedding size", _number(details["embedding_dim"], 0)),
        (
            "Pretraining datasets",
            "not declared (contamination unknown)"
            if pretraining is None
            else _escape(", ".join(pretraining)) or "none",
        ),
        ("Weights", MISSING if weights is None else _link(weights, weights)),
        ("Weights sha256", MISSING if sha is None else f"<code>{_escape(sha)}</code>"),
        ("Mean", f"{_number(details['mean_all'])} over its scored tasks"),
        ("Tasks", f"{details['n_tasks']} of {n_scored} scored tasks"),
    ]
    return _facts(facts)


def _history_section(
    model: str,
    old: list[tuple[pathlib.Path, Submission]],
    labels: dict[tuple[str, str], str],
    cells: _Cells,
    registry: tasks.Registry,
) -> str:
    title = '<h2 id="history-title">Superseded entries</h2>'
    if not old:
        return (
            f'<section id="history" aria-labelledby="history-title">\n{title}\n'
            "<p>None: no entry of this model was replaced.</p>\n</section>"
        )
    old = sorted(old, key=lambda item: (registry.position(item[1].task_id), item[0].name))
    rows = []
    for path, record in old:
        task = registry.get(record.task_id)
        if record.kind == "run":
            spread = "" if record.spread is None else f" ± {record.spread:.3f}"
            value = f"{record.mean:.3f}{spread}"
            source = f"run <code>{_escape(record.run_id)}</code>"
        else:
            assert record.source is not None  # the schema requires it of a reported entry
            value = render_markdown.reported_text(pd.Series([float(record.mean)])).iloc[0]
            source = _source_link(labels, record.source.citation, record.source.url)
        i = cells.position.get((model, task.id))
        current = MISSING if i is None else f"{cells.score[i]} ({cells.source[i]})"
        kept = f"submissions/{model}/history/{task.id}/{path.name}"
        rows.append(
            f'<tr><th scope="row"><a href="../{task_page(task.id)}">{_task_name(task)}</a></th>'
            f"<td>{value}</td><td>{source}</td><td>{_escape(record.date)}</td>"
            f"<td><code>{_escape(kept)}</code></td><td>{current}</td></tr>"
        )
    headers = [
        _header("Task", "text"),
        _header("Replaced entry", first="descending"),
        _header("Its source", "text"),
        _header("Recorded", "text"),
        _header("Kept as", "text"),
        _header("Current entry", first="descending"),
    ]
    return (
        f'<section id="history" aria-labelledby="history-title">\n{title}\n'
        "<p>Entries that a later result replaced (on purpose, with <code>--replace</code>); "
        "the files stay in the leaderboard's submissions.</p>\n"
        + _table("history-table", "Replaced entries, oldest first per task", headers, rows)
        + "\n</section>"
    )
