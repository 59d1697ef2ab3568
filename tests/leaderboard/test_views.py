"""The views beside the ranking: label-efficiency variants and robustness records."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from eva_coralbay import cli
from eva_coralbay.leaderboard import LeaderboardError, build, render_markdown, robustness_board
from eva_coralbay.leaderboard import robustness_record as record_io
from eva_coralbay.leaderboard.aggregate import aggregate
from eva_coralbay.leaderboard.load import load
from eva_coralbay.leaderboard.robustness_board import RobustnessSubmission
from eva_coralbay.leaderboard.store import Store
from eva_coralbay.leaderboard.submit import submit_run
from eva_coralbay.leaderboard.validate import validate
from tests.conftest import REPOSITORY_ROOT
from tests.leaderboard import eva_output
from tests.leaderboard.builders import (
    VARIANT_TEMPLATE,
    robustness_record,
    submit_scores,
    submit_variant,
    write_json,
)
from tests.leaderboard.conftest import snapshot

# --- label efficiency ----------------------------------------------------------------------


def test_a_run_on_a_subset_of_the_cases_is_entered_as_the_variant(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    full = submit_scores(root, tmp_path, "coralbay", "btcv", eva_output.dice_runs(0.8))
    subset = submit_variant(root, tmp_path, "coralbay", "btcv", 5, eva_output.dice_runs(0.6))
    assert subset.record.task_id == "btcv@5"
    assert subset.write.path == root / "submissions" / "coralbay" / "btcv@5.json"
    # The full-label entry is untouched, and the variant is another protocol.
    assert json.loads((root / "submissions/coralbay/btcv.json").read_text())["mean"] == (
        pytest.approx(0.8, abs=0.01)
    )
    assert subset.record.protocol_hash != full.record.protocol_hash
    assert subset.record.metric == "dice"


@pytest.mark.parametrize(
    ("task_id", "train_cases", "message"),
    [
        ("btcv@3", 5, "variant trained on 3 labels, but the run's config trained on 5 labels"),
        ("btcv@5", None, "trained on 5 labels, but the run's config trained on every label"),
        ("btcv@05", 5, "must be a positive integer"),
        ("btcv@0", 5, "must be a positive integer"),
    ],
)
def test_a_variant_that_contradicts_the_config_is_refused(
    root: pathlib.Path,
    tmp_path: pathlib.Path,
    task_id: str,
    train_cases: int | None,
    message: str,
) -> None:
    session = eva_output.write_session(
        tmp_path / "run",
        VARIANT_TEMPLATE,
        eva_output.segmentation_metrics([0.6]),
        env={"TRAIN_CASES": "all" if train_cases is None else str(train_cases)},
    )
    with pytest.raises(LeaderboardError, match=re.escape(message)):
        submit_run(session, root, task_id=task_id)
    assert snapshot(root) == {}


def test_a_config_without_a_count_of_cases_is_refused(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    session = eva_output.write_session(
        tmp_path / "run",
        VARIANT_TEMPLATE,
        eva_output.segmentation_metrics([0.6]),
        env={"TRAIN_CASES": "five"},
    )
    with pytest.raises(LeaderboardError, match=r"config\.yaml: train_cases is 'five'"):
        submit_run(session, root)
    assert snapshot(root) == {}


def _variants_board(root: pathlib.Path, tmp_path: pathlib.Path, *, with_variants: bool) -> None:
    """Two models on BTCV and WORD; with their BTCV variants far below their full scores."""
    for model, level in (("alpha", 0.8), ("beta", 0.7)):
        for task in ("btcv", "word"):
            submit_scores(root, tmp_path, model, task, eva_output.dice_runs(level))
    if with_variants:
        # beta learns from few labels: it would lead the means if the variants leaked in.
        for model, cases, level in (("alpha", 1, 0.1), ("alpha", 5, 0.2), ("beta", 1, 0.65)):
            submit_variant(root, tmp_path, model, "btcv", cases, eva_output.dice_runs(level))
        # A model with variants only is on no ranking at all.
        submit_variant(root, tmp_path, "gamma", "btcv", 1, eva_output.dice_runs(0.99))


def test_variants_stay_out_of_the_main_tables(tmp_path: pathlib.Path) -> None:
    plain, with_variants = tmp_path / "plain", tmp_path / "variants"
    _variants_board(plain, tmp_path / "a", with_variants=False)
    _variants_board(with_variants, tmp_path / "b", with_variants=True)
    outputs_plain, board_plain = build.render_outputs(plain)
    outputs, board = build.render_outputs(with_variants)
    # The ranking's tables, the parquet and the heatmap are those of the full-label entries.
    for name in (build.PARQUET, build.HEATMAP_PNG, build.HEATMAP_SVG, "site/sizes.svg"):
        assert outputs[name] == outputs_plain[name], name
    assert board.models.equals(board_plain.models)
    assert list(board.models.index) == ["alpha", "beta"]
    assert set(board.entries["task_id"]) == {"btcv", "word"}
    readme = outputs[build.README].decode()
    overall = readme[readme.index("## Overall") : readme.index("## Label efficiency")]
    plain_readme = outputs_plain[build.README].decode()
    assert overall in plain_readme
    # The variants are in their own view, each curve ending with the full-label point.
    curves = board.label_efficiency
    alpha = curves[curves["model_id"] == "alpha"]
    assert alpha["entry_task_id"].tolist() == ["btcv@1", "btcv@5", "btcv"]
    assert alpha["mean"].round(2).tolist() == [0.1, 0.2, 0.8]
    assert "| Model | 1 | 5 | all |" in readme
    assert re.search(r"\| gamma \| 0\.99\d ± 0\.\d{3} \| — \| — \|", readme)
    # gamma has no full-label entry: no model page, and no link to one.
    page = outputs["site/label-efficiency.html"].decode()
    assert '<a href="models/alpha.html">' in page and "models/gamma.html" not in page
    assert "site/models/gamma.html" not in outputs


def test_the_views_render_the_same_bytes_whatever_the_submission_order(
    tmp_path: pathlib.Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    points = [("alpha", 1, 0.3), ("beta", 5, 0.5), ("alpha", 5, 0.6), ("beta", 1, 0.2)]
    records = [("alpha", {"window_lung": 0.7}), ("beta", {"spacing_1mm": 0.9, "window_lung": 0.8})]
    for root, order in ((first, 1), (second, -1)):
        for model, level in (("alpha", 0.8), ("beta", 0.7))[::order]:
            submit_scores(root, tmp_path / root.name, model, "btcv", eva_output.dice_runs(level))
        for model, cases, level in points[::order]:
            submit_variant(
                root, tmp_path / root.name, model, "btcv", cases, eva_output.dice_runs(level)
            )
        for model, cosines in records[::order]:
            record = robustness_record(f"radiology/{model}", cosines)
            robustness_board.submit(write_json(tmp_path / root.name / "r.json", record), root)
    outputs, board = build.render_outputs(first)
    assert outputs == build.render_outputs(first)[0]  # twice the same
    assert outputs == build.render_outputs(second)[0]  # in the other order
    assert {"site/label-efficiency.html", "site/robustness.html", build.CURVES_SVG} <= set(outputs)
    assert outputs[build.CURVES_SVG] == outputs[f"site/{build.CURVES_SVG}"]
    # The same from another process, with other hash seeds (set orders).
    build.build(first)
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPOSITORY_ROOT)}
    subprocess.run(
        [sys.executable, "-m", "eva_coralbay.cli", "leaderboard", "build", "--root", str(second)],
        check=True,
        capture_output=True,
        env=environment,
    )
    for name in ("README.md", build.CURVES_SVG, "site/label-efficiency.html"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert list(board.robustness["perturbation"][board.robustness["model_id"] == "beta"]) == [
        "window_lung",
        "spacing_1mm",
    ]


def test_the_curves_plot_is_removed_with_the_last_variant(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "alpha", "btcv", eva_output.dice_runs(0.8))
    submit_variant(root, tmp_path, "alpha", "btcv", 1, eva_output.dice_runs(0.3))
    build.build(root)
    assert (root / build.CURVES_SVG).is_file()
    assert (root / "site" / "label-efficiency.html").is_file()
    (root / "submissions" / "alpha" / "btcv@1.json").unlink()
    build.build(root)
    assert not (root / build.CURVES_SVG).exists()
    assert not (root / "site" / "label-efficiency.html").exists()
    assert "Label efficiency" not in (root / "README.md").read_text()


# --- robustness ----------------------------------------------------------------------------


def test_a_robustness_record_is_submitted_replaced_and_shown(
    root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submit_scores(root, tmp_path, "coralbay", "btcv", eva_output.dice_runs(0.8))
    record = write_json(tmp_path / "r.json", robustness_record())
    assert (
        cli.main(["leaderboard", "submit", "--robustness", str(record), "--root", str(root)]) == 0
    )
    assert "submitted the robustness record of coralbay" in capsys.readouterr().out
    stored = root / "robustness" / "coralbay.json"
    assert json.loads(stored.read_text()) == robustness_record()
    before = snapshot(root)
    again = write_json(tmp_path / "again.json", robustness_record(cosines={"window_lung": 0.5}))
    command = ["leaderboard", "submit", "--robustness", str(again), "--root", str(root)]
    assert cli.main(command) == 1
    assert "pass --replace" in capsys.readouterr().err
    assert snapshot(root) == before
    assert cli.main([*command, "--replace"]) == 0
    kept = root / "robustness" / "history" / "coralbay" / "0001.json"
    assert kept.read_bytes() == before["robustness/coralbay.json"]
    build.build(root)
    assert "| coralbay | 2 | 0.500 |" in (root / "README.md").read_text()
    page = (root / "site" / "robustness.html").read_text()
    assert '<td data-v="0.5">0.500</td>' in page
    assert validate(root) == []


def _probe_record(change: float) -> dict:
    """A record of scan-labelled data whose probe lost `change` under the lung window."""
    record = robustness_record(cosines={"window_lung": 0.9, "flip_left_right": 0.8})
    record["probe"] = {
        "balanced_accuracy": 0.75,
        "train_scans": 8,
        "val_scans": 4,
        "classes": ["normal", "pneumonia"],
        "method": "logistic regression on the unperturbed training embeddings",
    }
    record["perturbations"][0]["probe"] = {"balanced_accuracy": 0.75 + change, "change": change}
    assert record_io.record_problems(record) == []  # what coralbay robustness writes
    return record


def test_a_probe_accuracy_change_is_shown_where_a_record_has_one(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "coralbay", "btcv", eva_output.dice_runs(0.8))
    store = Store(root)
    plain = RobustnessSubmission.from_json("coralbay", robustness_record())
    board = aggregate(load(store).entries, store, [plain])
    assert "Change in probe accuracy" not in render_markdown.render(board, [], None)
    # The probe block of scan-labelled data: its change is shown when present, never required.
    with_change = RobustnessSubmission.from_json("coralbay", _probe_record(-0.042))
    board = aggregate(load(store).entries, store, [with_change])
    readme = render_markdown.render(board, [], None)
    table = readme[readme.index("### Change in probe accuracy") :]
    assert "| `window_lung` | `flip_left_right` |" in table
    assert "| coralbay | 2 | -0.042 | — |" in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps(robustness_record() | {"record_type": "x"}), "invalid robustness record"),
        (
            json.dumps(robustness_record(cosines={"window_lung": 1.5})),
            "1.5 is greater than the maximum of 1",
        ),
        (json.dumps(robustness_record()).replace("0.62", "NaN"), "malformed JSON"),
        ("{", "malformed JSON"),
        (
            (
                pathlib.Path(__file__).parents[2] / "leaderboard/submissions/voco_b/btcv.json"
            ).read_text(),
            "'record_type' is a required property",
        ),
    ],
    ids=["record type", "cosine above 1", "NaN", "truncated", "a task submission"],
)
def test_a_bad_robustness_record_is_refused_by_name_and_nothing_is_written(
    root: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    submit_scores(root, tmp_path, "coralbay", "btcv", eva_output.dice_runs(0.8))
    existing = write_json(tmp_path / "good.json", robustness_record())
    robustness_board.submit(existing, root)
    before = snapshot(root)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    command = ["leaderboard", "submit", "--robustness", str(bad), "--root", str(root)]
    assert cli.main([*command, "--replace"]) == 1
    error = capsys.readouterr().err
    assert str(bad) in error.replace("\n", "") and message in error
    assert snapshot(root) == before


def test_a_bad_record_in_the_robustness_folder_stops_build_and_validate(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    submit_scores(root, tmp_path, "coralbay", "btcv", eva_output.dice_runs(0.8))
    build.build(root)
    before = snapshot(root)
    broken = write_json(root / "robustness" / "coralbay.json", robustness_record())
    broken.write_text(broken.read_text().replace('"fp32"', '"fp64"'))
    stray = root / "robustness" / "Notes.txt"
    stray.write_text("hello")
    problems = validate(root)
    assert [problem.split(":")[0] for problem in problems] == [str(stray), str(broken)]
    assert "'fp64' is not one of" in problems[1]
    with pytest.raises(LeaderboardError, match=re.escape(str(broken))):
        build.build(root)
    shutil.rmtree(root / "robustness")
    assert snapshot(root) == before  # the failed build wrote nothing


def test_robustness_options_of_a_run_are_refused(
    root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = write_json(tmp_path / "r.json", robustness_record())
    command = ["leaderboard", "submit", "--robustness", str(record), "--root", str(root)]
    assert cli.main([*command, "--task", "btcv"]) == 1
    assert "--task: options of an eva run" in capsys.readouterr().err
    assert cli.main([*command, str(tmp_path)]) == 1
    assert "give an eva run (PATH) or a robustness record" in capsys.readouterr().err
    assert snapshot(root) == {}
