import base64
import io
import pathlib
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from eva_coralbay.leaderboard import LeaderboardError, aggregate, build, load, render_heatmap
from eva_coralbay.leaderboard.store import Store
from eva_coralbay.leaderboard.submit import ModelDetails
from tests import hang_guard
from tests.leaderboard.builders import declare_phantom_tasks, per_case_dice, submit_scores
from tests.leaderboard.conftest import snapshot

REPOSITORY_LEADERBOARD = pathlib.Path(__file__).resolve().parents[2] / "leaderboard"

# The published numbers, as the issue lists them (rows: model; columns: the source's order).
EVA_0_4_5 = """
VoCo-B 0.830 0.816 0.734
VoCo-H 0.832 0.818 0.725
ViT-B/16 DINO (2D baseline) 0.690 0.677 0.445
"""
EVA_0_4_5_COLUMNS = ["BTCV", "LiTS17", "MSD Pancreas"]
EVA_PR_1021 = """
SwinUNETR 0.83 0.99 0.90 0.81 0.74 0.85 0.90 0.96 0.82 0.74 0.72
Universal Model 0.78 0.96 0.77 0.72 0.81 0.83 0.91 0.97 0.81 0.74 0.67
SuPreM 0.71 0.98 0.83 0.74 0.81 0.85 0.91 0.97 0.81 0.80 0.72
VoCo-B 0.74 0.96 0.71 0.72 0.83 0.86 0.92 0.97 0.81 0.78 0.71
VoCo-H 0.76 0.92 0.83 0.70 0.83 0.85 0.92 0.97 0.82 0.82 0.72
"""
EVA_PR_1021_COLUMNS = [
    "NoduleMNIST3D", "OrganMNIST3D", "CC-CCII", "LUNA25", "BTCV", "WORD", "FLARE22",
    "CHAOS (CT)", "LiTS17", "KiTS23", "MSD Pancreas",
]  # fmt: skip


def _published(text: str, columns: list[str]) -> dict[tuple[str, str], str]:
    table = {}
    for line in text.strip().splitlines():
        model, *scores = line.rsplit(" ", len(columns))
        table.update(
            {(model, column): score for column, score in zip(columns, scores, strict=True)}
        )
    return table


def _markdown_tables(readme: str) -> dict[str, dict[tuple[str, str], str]]:
    """Each `## title` section's table as {(first column, header): cell}."""
    tables = {}
    for section in re.split(r"^## ", readme, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        rows = [line for line in body.splitlines() if line.startswith("|")]
        if len(rows) < 2:
            continue
        split = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
        header, data = split[0], split[2:]
        tables[title] = {
            (row[0] if header[0] != "#" else row[1], column): cell
            for row in data
            for column, cell in zip(header, row, strict=True)
        }
    return tables


def _number(cell: str) -> str:
    match = re.search(r"\d\.\d+", cell)
    assert match, cell
    return match.group(0)


@pytest.fixture
def seeded(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "leaderboard"
    shutil.copytree(REPOSITORY_LEADERBOARD / "submissions", root / "submissions")
    return root


def test_repository_leaderboard_is_valid_and_built() -> None:
    from eva_coralbay.leaderboard import validate

    assert validate.validate(REPOSITORY_LEADERBOARD) == []  # includes README.md being current
    outputs, _ = build.render_outputs(REPOSITORY_LEADERBOARD)
    # PNG, SVG and parquet bytes depend on the matplotlib and pyarrow versions; their content
    # must still match what is committed.
    committed = pd.read_parquet(REPOSITORY_LEADERBOARD / build.PARQUET)
    pd.testing.assert_frame_equal(committed, pd.read_parquet(io.BytesIO(outputs[build.PARQUET])))
    for name in (build.HEATMAP_PNG, build.HEATMAP_SVG):
        assert (REPOSITORY_LEADERBOARD / name).stat().st_size > 10_000


def test_seed_entries_rendered(seeded: pathlib.Path) -> None:
    build.build(seeded)
    tables = _markdown_tables((seeded / build.README).read_text())
    cells = {**tables["Segmentation: Dice"], **tables["Classification: Balanced accuracy"]}
    current = _published(EVA_PR_1021, EVA_PR_1021_COLUMNS)
    baseline = _published(EVA_0_4_5, EVA_0_4_5_COLUMNS)
    for (model, task), value in current.items():
        assert float(_number(cells[model, task])) == float(value), (model, task)
        assert cells[model, task].endswith("(S2)") or "(S2)**" in cells[model, task]
    for task in EVA_0_4_5_COLUMNS:
        model = "ViT-B/16 DINO (2D baseline)"
        assert float(_number(cells[model, task])) == float(baseline[model, task])
        assert "(S1)" in cells[model, task]
    assert cells["ViT-B/16 DINO (2D baseline)", "WORD"] == "—"
    # The older numbers of the VoCo models are kept, next to the ones that replaced them.
    readme = (seeded / build.README).read_text()
    for model in ("VoCo-B", "VoCo-H"):
        for task in EVA_0_4_5_COLUMNS:
            old = float(baseline[model, task])
            new = float(current[model, task])
            line = f"| {model} | {task} | {_reported(old)} (S1) | {_reported(new)} (S2) |"
            assert line in readme
    sources = tables["Sources"]
    assert "kaiko-ai/eva/pull/1021" in sources["S2", "Source"]
    assert "0.4.5" in sources["S1", "Source"]
    overall = tables["Overall"]
    assert overall["ViT-B/16 DINO (2D baseline)", "Tasks"] == "3/11"
    assert overall["SwinUNETR", "Tasks"] == "11/11"
    assert overall["SwinUNETR", "Contaminated"] == "?"  # pretraining data not declared


def _reported(value: float) -> str:
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def _board(root: pathlib.Path) -> aggregate.Board:
    return aggregate.aggregate(load.load(Store(root)).entries, Store(root))


def test_overall_means_and_ranks(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    scores = {
        ("alpha", "btcv"): 0.8, ("alpha", "word"): 0.75, ("alpha", "flare22"): 0.9,
        ("beta", "btcv"): 0.85, ("beta", "word"): 0.6,
        ("gamma", "btcv"): 0.8, ("gamma", "word"): 0.75, ("gamma", "flare22"): 0.95,
        ("gamma", "demo_phantom_segmentation"): 0.99,
    }  # fmt: skip
    declare_phantom_tasks(root)
    for (model, task), value in scores.items():
        submit_scores(root, tmp_path, model, task, [value])
    board = _board(root)
    means = pd.Series(scores).unstack()
    real = ["btcv", "word", "flare22"]
    # Synthetic tasks stay out of the overall numbers when real tasks exist.
    assert [task.id for task in board.scored_tasks] == real
    for model in ("alpha", "beta", "gamma"):
        assert board.models.at[model, "mean_all"] == pytest.approx(means.loc[model, real].mean())
    expected_ranks = {
        task: dict(zip(means.index, scipy_stats.rankdata(-means[task].fillna(-1)), strict=True))
        for task in real
    }
    entries = board.entries.set_index(["model_id", "task_id"])
    for task in real:
        for model in means.index[means[task].notna()]:
            assert entries.at[(model, task), "rank"] == expected_ranks[task][model]
    # Complete rows first, then mean rank: gamma (ranks 2.5, 1.5, 1) before alpha (2.5, 1.5, 2).
    assert list(board.models.index) == ["gamma", "alpha", "beta"]
    assert board.models.at["beta", "n_tasks"] == 2
    assert entries.at[("alpha", "word"), "best"] and entries.at[("gamma", "word"), "best"]
    assert not entries.at[("beta", "word"), "best"]


def test_contamination_marks(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    submit_scores(
        root, tmp_path, "seen", "btcv", [0.8], details=ModelDetails(pretraining_datasets=["btcv"])
    )
    submit_scores(root, tmp_path, "seen", "word", [0.7])
    submit_scores(
        root, tmp_path, "clean", "btcv", [0.7], details=ModelDetails(pretraining_datasets=[])
    )
    submit_scores(root, tmp_path, "unknown", "btcv", [0.6])
    build.build(root)
    tables = _markdown_tables((root / build.README).read_text())
    assert tables["Segmentation: Dice"]["seen", "BTCV"].endswith("†")
    assert "†" not in tables["Segmentation: Dice"]["seen", "WORD"]
    assert tables["Overall"]["seen", "Contaminated"] == "† btcv"
    assert tables["Overall"]["clean", "Contaminated"] == "none"
    assert tables["Overall"]["unknown", "Contaminated"] == "?"
    assert tables["Segmentation: Dice"]["unknown", "WORD"] == "—"


def test_statistical_ties_from_per_case_scores(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    submit_scores(root, tmp_path, "best", "btcv", [0.85], per_case=per_case_dice(0.85, seed=1))
    submit_scores(root, tmp_path, "close", "btcv", [0.849], per_case=per_case_dice(0.849, seed=2))
    submit_scores(root, tmp_path, "worse", "btcv", [0.75], per_case=per_case_dice(0.75, seed=3))
    submit_scores(root, tmp_path, "no_cases", "btcv", [0.848])
    build.build(root)
    table = _markdown_tables((root / build.README).read_text())["Segmentation: Dice"]
    assert table["best", "BTCV"].startswith("**0.850")
    assert table["close", "BTCV"].endswith("≈")
    assert "≈" not in table["worse", "BTCV"]
    assert "≈" not in table["no_cases", "BTCV"]  # no per-case scores: no test, no mark
    frame = pd.read_parquet(root / build.PARQUET).set_index("model_id")
    assert frame.at["close", "p_value_vs_best"] > 0.05
    assert frame.at["worse", "p_value_vs_best"] < 0.01
    assert pd.isna(frame.at["no_cases", "tied_with_best"])


def test_parquet_table(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    submit_scores(root, tmp_path, "alpha", "btcv", [0.8, 0.82])
    submit_scores(root, tmp_path, "alpha", "word", [0.7])
    build.build(root)
    frame = pd.read_parquet(root / build.PARQUET)
    assert list(frame.columns) == list(aggregate.ENTRY_COLUMNS)
    assert frame[["model_id", "task_id"]].values.tolist() == [["alpha", "btcv"], ["alpha", "word"]]
    assert frame["mean"].tolist() == pytest.approx([0.81, 0.7])
    assert frame["n_runs"].tolist() == [2, 1]


def test_builds_are_byte_identical_across_processes(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "best", "btcv", [0.85, 0.86], per_case=per_case_dice(0.85, 1))
    submit_scores(root, tmp_path, "close", "btcv", [0.849], per_case=per_case_dice(0.849, 2))
    shutil.copytree(REPOSITORY_LEADERBOARD / "submissions", tmp_path / "seed", dirs_exist_ok=True)
    for model in (tmp_path / "seed").iterdir():
        shutil.copytree(model, root / "submissions" / model.name)
    copies = [tmp_path / "first", tmp_path / "second"]
    for copy in copies:
        shutil.copytree(root, copy)
    command = [sys.executable, "-m", "eva_coralbay.cli", "leaderboard", "build", "--root"]
    processes = [subprocess.Popen([*command, str(copy)]) for copy in copies]
    assert [process.wait(timeout=hang_guard.hang_timeout(300)) for process in processes] == [0, 0]
    first, second = (snapshot(copy) for copy in copies)
    assert set(first) >= {build.PARQUET, build.README, build.HEATMAP_PNG, build.HEATMAP_SVG}
    assert first == second
    in_process, _ = build.render_outputs(root)
    assert all(first[name] == content for name, content in in_process.items())


def test_heatmap_shows_the_top_models(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for index, model in enumerate(("m1", "m2", "m3", "m4")):
        submit_scores(root, tmp_path, model, "btcv", [0.9 - index / 10])
    board = _board(root)
    assert list(render_heatmap.shown_models(board, top=2).index) == ["m1", "m2"]
    png, svg = render_heatmap.render(board, top=2)
    assert png.startswith(b"\x89PNG") and b"<svg" in svg
    assert b"Date" not in svg and b"Software" not in png
    # The SVG holds the grid itself, one pixel per cell (best model on top), not a raster.
    import matplotlib
    from PIL import Image

    grid = next(
        Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA")
        for data, attributes in re.findall(rb'href="data:image/png;base64,\s*([^"]*)"([^>]*)', svg)
        if b"pixelated" in attributes
    )
    assert grid.size == (1, 2)  # one task, two models
    viridis = matplotlib.colormaps["viridis"]
    assert grid.getpixel((0, 0)) == viridis(1.0, bytes=True)
    assert grid.getpixel((0, 1)) == viridis(0.0, bytes=True)


def test_build_refuses_invalid_folder_and_writes_nothing(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "alpha", "btcv", [0.8])
    (root / "submissions" / "alpha" / "word.json").write_text("{not json")
    before = snapshot(root)
    with pytest.raises(LeaderboardError, match=r"word\.json: malformed JSON"):
        build.build(root)
    assert snapshot(root) == before
    with pytest.raises(LeaderboardError, match="no submissions"):
        build.build(tmp_path / "empty")


def test_a_single_run_shows_its_score_without_a_spread(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # eva records a standard deviation of 0 for one run; the tables must not show it as one.
    submit_scores(root, tmp_path, "once", "btcv", [0.8])
    submit_scores(root, tmp_path, "twice", "btcv", [0.7, 0.74])
    build.build(root)
    readme = (root / "README.md").read_text()
    assert "| once | 0.800 |" in readme.replace("**", "")
    assert "0.720 ± 0.028" in readme
    assert "± 0.000" not in readme
    page = (root / "site" / "tasks" / "btcv.html").read_text()
    once = re.search(r'<tr id="model-once">.*?</tr>', page)
    twice = re.search(r'<tr id="model-twice">.*?</tr>', page)
    assert once is not None and twice is not None
    # Score, spread over the runs, runs: no spread for one run.
    assert "<td><b>0.800</b></td><td>—</td><td>1</td>" in once.group()
    assert "<td>0.720</td><td>0.028</td><td>2</td>" in twice.group()
