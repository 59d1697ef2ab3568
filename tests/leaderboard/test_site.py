"""The leaderboard site's files: pages, escaping, rebuilds, the committed site, `serve`."""

from __future__ import annotations

import html
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from eva_coralbay import tasks as catalogue
from eva_coralbay.leaderboard import LeaderboardError, build, render_site, render_sizes, serve
from eva_coralbay.leaderboard.aggregate import Board
from tests import hang_guard
from tests.conftest import REPOSITORY_ROOT
from tests.leaderboard.builders import AWKWARD_NAME, submit_scores

Site = tuple[pathlib.Path, Board]
REPOSITORY_LEADERBOARD = REPOSITORY_ROOT / "leaderboard"
COMMAND = (sys.executable, "-m", "eva_coralbay.cli", "leaderboard")


def _page(root: pathlib.Path, name: str) -> str:
    return (root / render_site.FOLDER / name).read_text()


def test_one_page_per_task_and_model_and_every_text_escaped(site_board: Site) -> None:
    root, board = site_board
    folder = root / render_site.FOLDER
    assert sorted(path.name for path in (folder / "tasks").iterdir()) == sorted(
        f"{task.id}.html" for task in board.tasks
    )
    assert sorted(path.name for path in (folder / "models").iterdir()) == sorted(
        f"{model}.html" for model in board.models.index
    )
    assert {path.name for path in folder.iterdir()} == {
        "index.html", "heatmap.svg", "sizes.svg", "assets", "tasks", "models",
        "label-efficiency.html", "label_efficiency.svg", "robustness.html",
    }  # fmt: skip
    escaped = html.escape(AWKWARD_NAME)
    assert escaped == "Tiny &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Co&quot;"
    for page in ("index.html", "tasks/btcv.html", "models/tiny.html"):
        assert escaped in _page(root, page), page
    for path in folder.rglob("*.html"):
        text = path.read_text()
        assert "<script>alert" not in text, path
        # Only the site's own script: no inline code, nothing from a network.
        assert re.findall(r"<script[^>]*>", text) == [
            f'<script src="{"../" if path.parent != folder else ""}assets/site.js" defer>'
        ]


def test_task_page_holds_scores_intervals_ties_classes_and_provenance(site_board: Site) -> None:
    root, board = site_board
    page = _page(root, "tasks/btcv.html")
    benchmark = catalogue.CATALOGUE["btcv"]
    assert benchmark.license.split(";")[0] in page
    assert "Landman et al." in page and benchmark.homepage in page
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r'<tr id="model-([^"]+)">.*?</tr>', page)
    }
    assert set(rows) == set(board.entries.loc[board.entries["task_id"] == "btcv", "model_id"])
    coralbay = rows["coralbay"]
    assert "<b>0.860</b>&nbsp;†" in coralbay  # best, and contaminated (pretrained on BTCV)
    assert re.search(r"\d\.\d{3}&ndash;\d\.\d{3}", coralbay)  # its bootstrap interval
    assert "run <code>20261127-101500123456_1a2b3c4d</code>" in coralbay
    protocol = board.entries.set_index(["model_id", "task_id"]).at[
        ("coralbay", "btcv"), "protocol_hash"
    ]
    assert f'<code title="{protocol}">{protocol[:12]}</code>' in coralbay
    assert "differs, p &lt; 0.001" in rows["clean_net"] or "differs, p = " in rows["clean_net"]
    assert '<a href="../index.html#source-S2"' in rows["voco_b"]  # a published number
    assert "published" in rows["voco_b"] and "run <code>" not in rows["voco_b"]
    # Per-class means from the per-case files, in the catalogue's class order.
    section = page[page.index('id="per-class"') :]
    headers = re.findall(r"<button type=\"button\">([^<]+)</button>", section)
    assert headers == ["Model", "Cases", "spleen", "liver", "pancreas"]
    spleen = board.case_scores[("coralbay", "btcv")]["spleen"].mean()
    assert f"<td>{spleen:.3f}</td>" in section


def test_model_pages_hold_the_card_contamination_and_history(site_board: Site) -> None:
    root, _ = site_board
    page = _page(root, "models/coralbay.html")
    assert "<dt>Parameters</dt><dd>62.0M</dd>" in page
    assert "<dt>Embedding size</dt><dd>768</dd>" in page
    assert "<dt>Pretraining datasets</dt><dd>btcv, totalsegmentator</dd>" in page
    assert 'href="https://example.org/coralbay-f48.safetensors"' in page
    assert "ab" * 32 in page
    contamination = dict(
        re.findall(r'tasks/([a-z0-9_-]+)\.html[^"]*">[^<]*</a></th>.*?<td data-v="([01]?)">', page)
    )
    assert contamination["btcv"] == "1" and contamination["word"] == "0"
    assert "None: no entry of this model was replaced." in page
    tiny = _page(root, "models/tiny.html")
    assert "<dt>Pretraining datasets</dt><dd>not declared (contamination unknown)</dd>" in tiny
    history = tiny[tiny.index('id="history"') :]
    assert "submissions/tiny/history/btcv/0001.json" in history
    assert (
        "0.510 ± 0.014" in history and "run <code>20261128-090000000000_5e6f7a8b</code>" in history
    )
    seeded = _page(root, "models/voco_b.html")
    assert seeded.count("submissions/voco_b/history/") == 3  # the 0.4.5 numbers #1021 replaced


def test_size_plot_places_models_by_parameters_or_embedding(site_board: Site) -> None:
    root, board = site_board
    svg = (root / render_site.FOLDER / render_site.SIZES).read_bytes()
    assert svg == render_sizes.render(board)
    assert b"<dc:date>" not in svg and b"Matplotlib v" not in svg
    text = svg.decode()
    assert "Parameters" in text and "Embedding size (parameters not stated)" in text
    neither = sum(
        parameters is None and embedding is None
        for parameters, embedding in zip(
            board.models["parameters"], board.models["embedding_dim"], strict=True
        )
    )
    assert f"{neither} model(s) state neither" in text


def test_rebuild_leaves_unchanged_pages_alone_and_removes_stale_ones(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "alpha", "btcv", [0.8])
    submit_scores(root, tmp_path, "beta", "btcv", [0.7])
    submit_scores(root, tmp_path, "gamma", "word", [0.6])
    build.build(root)
    site = root / render_site.FOLDER
    word = site / "tasks" / "word.html"
    before = word.stat()
    (site / "models" / "orphan.html").write_text("left over")
    (site / ".index.html.123.tmp").write_text("from an interrupted build")
    for path in (root / "submissions" / "beta").rglob("*"):
        path.unlink()
    (root / "submissions" / "beta").rmdir()
    result = build.build(root)
    assert result.site_files == len([path for path in site.rglob("*") if path.is_file()])
    assert not (site / "models" / "beta.html").exists()
    assert not (site / "models" / "orphan.html").exists()
    assert not [path for path in root.rglob(".*")]
    after = word.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "beta" not in (site / "tasks" / "btcv.html").read_text()


def test_repository_site_is_current() -> None:
    outputs, _ = build.render_outputs(REPOSITORY_LEADERBOARD)
    site = {name: data for name, data in outputs.items() if name.startswith("site/")}
    committed = {
        str(path.relative_to(REPOSITORY_LEADERBOARD)): path.read_bytes()
        for path in (REPOSITORY_LEADERBOARD / render_site.FOLDER).rglob("*")
        if path.is_file()
    }
    assert set(committed) == set(site)
    # The SVGs depend on the matplotlib version, the pages do not.
    for name, data in site.items():
        if not name.endswith(".svg"):
            assert committed[name] == data, f"{name} is out of date: coralbay leaderboard build"


def test_serve_command_serves_the_site_until_interrupted(site_board: Site) -> None:
    root, _ = site_board
    process = subprocess.Popen(
        [*COMMAND, "serve", "--root", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)index\.html", line)
        assert match, line
        base = match.group(1)
        for page, kind in (
            ("index.html", "text/html"),
            ("assets/site.js", "javascript"),
            ("assets/site.css", "text/css"),
            ("heatmap.svg", "image/svg+xml"),
            ("models/coralbay.html", "text/html"),
        ):
            with urllib.request.urlopen(base + page, timeout=10) as response:
                assert response.status == 200
                assert kind in response.headers["Content-Type"], page
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(base + "models/nobody.html", timeout=10)
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=hang_guard.hang_timeout(30))
    assert process.returncode == 0, errors
    assert "Traceback" not in errors


def test_serve_without_a_built_site_says_what_to_do(root: pathlib.Path) -> None:
    from eva_coralbay import cli

    with pytest.raises(LeaderboardError, match="no built site; run `coralbay leaderboard build"):
        serve.site_folder(root)
    assert cli.main(["leaderboard", "serve", "--root", str(root), "--port", "0"]) == 1
