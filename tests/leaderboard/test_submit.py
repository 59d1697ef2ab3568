import importlib.metadata
import json
import math
import pathlib
import statistics

import pytest

from eva_coralbay import cli
from eva_coralbay.leaderboard import LeaderboardError, builtin_registry, eva_run, schema
from eva_coralbay.leaderboard.submit import ModelDetails, submit_run
from tests.leaderboard import eva_output
from tests.leaderboard.conftest import REAL_EVA_SESSION, snapshot

BUILTIN = builtin_registry()
"""The built-in tasks: every record of these tests is on one."""


def test_eva_output_matches_real_eva() -> None:
    real = json.loads((REAL_EVA_SESSION / "results.json").read_text())
    values = {
        stage: [
            {name: stats["values"] for name, stats in dataset.items()}
            for dataset in real["metrics"][stage]
        ]
        for stage in ("val", "test")
    }
    assert eva_output.results_json(values) == (REAL_EVA_SESSION / "results.json").read_text()
    probe = (REAL_EVA_SESSION.parents[2] / "probe.yaml").read_text()
    assert eva_output.resolved_config(probe) == (REAL_EVA_SESSION / "config.yaml").read_text()


def test_submit_real_eva_run(root: pathlib.Path) -> None:
    submission = submit_run(REAL_EVA_SESSION, root, model_id="tiny_probe", date="2026-11-27")
    real = json.loads((REAL_EVA_SESSION / "results.json").read_text())
    expected = real["metrics"]["test"][0]["test/MulticlassAccuracy"]
    record = json.loads((root / "submissions" / "tiny_probe" / "organmnist.json").read_text())
    assert submission.inferred == ("task",)  # from the output folder .../organmnist/<session>
    assert record["task_id"] == "organmnist"
    assert record["stage"] == "test"
    assert record["eva_metric_key"] == "test/MulticlassAccuracy"
    assert record["values"] == expected["values"]
    assert record["mean"] == expected["mean"]
    assert record["run_id"] == REAL_EVA_SESSION.name
    # The libraries behind the number, as installed (read from metadata, not imported).
    for field, distribution in (
        ("eva_version", "kaiko-eva"),
        ("torch_version", "torch"),
        ("torchmetrics_version", "torchmetrics"),
    ):
        assert record[field] == importlib.metadata.version(distribution)
    assert schema.record_problems(record, BUILTIN) == []


def test_submit_segmentation_infers_model_and_task(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    values = eva_output.dice_runs(0.8)
    submission = submit_run(segmentation_session / "results.json", root, date="2026-11-27")
    assert set(submission.inferred) == {"model", "task"}
    path = root / "submissions" / "coralbay" / "btcv.json"
    record = json.loads(path.read_text())
    assert record["registry_name"] == "radiology/coralbay"
    assert record["eva_metric_key"] == "val/DiceScore"
    assert record["stage"] == "val"
    assert record["values"] == pytest.approx(values)
    assert record["mean"] == pytest.approx(statistics.mean(values))
    assert record["stdev"] == pytest.approx(statistics.stdev(values))
    assert len(record["protocol_hash"]) == 64
    assert record["kind"] == "run" and record["date"] == "2026-11-27"


def test_submit_offline_classification_reads_predict_datasets(
    root: pathlib.Path, classification_session: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # The output folder name says nothing: the task must come from the predict datasets.
    moved = tmp_path / "elsewhere" / classification_session.name
    moved.parent.mkdir()
    classification_session.rename(moved)
    submission = submit_run(moved.parent, root, date="2026-11-27")
    record = submission.record
    assert (record.model_id, record.task_id) == ("voco_b", "organmnist")
    assert record.eva_metric_key == "test/MulticlassAccuracy"
    assert record.mean == pytest.approx(0.916)


@pytest.mark.parametrize(
    "dataset_class",
    ["eva.vision.datasets.BTCV", "eva.vision.data.datasets.segmentation.btcv.BTCV"],
)
def test_eva_dataset_classes_map_to_tasks(
    root: pathlib.Path, tmp_path: pathlib.Path, dataset_class: str
) -> None:
    session = eva_output.write_session(
        tmp_path / "out",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics([0.7]),
        env={"DATASET_CLASS": dataset_class},
    )
    assert submit_run(session, root).record.task_id == "btcv"


def test_model_and_task_overrides(root: pathlib.Path, segmentation_session: pathlib.Path) -> None:
    record = submit_run(segmentation_session, root, model_id="coralbay_b", task_id="word").record
    assert (record.model_id, record.task_id) == ("coralbay_b", "word")
    assert (root / "submissions" / "coralbay_b" / "word.json").is_file()


def test_replace_keeps_history(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    first = eva_output.write_session(
        tmp_path / "a", eva_output.SEGMENTATION_TEMPLATE, eva_output.segmentation_metrics([0.7])
    )
    second = eva_output.write_session(
        tmp_path / "b", eva_output.SEGMENTATION_TEMPLATE, eva_output.segmentation_metrics([0.75])
    )
    submit_run(first, root)
    before = snapshot(root)
    with pytest.raises(LeaderboardError, match="--replace"):
        submit_run(second, root)
    assert snapshot(root) == before
    result = submit_run(second, root, replace=True)
    history = root / "submissions/coralbay/history/btcv/0001.json"
    assert result.write.replaced == history
    assert json.loads(history.read_text())["mean"] == 0.7
    assert json.loads(result.write.path.read_text())["mean"] == 0.75


def test_a_run_of_another_registry_model_under_the_same_id_is_refused(
    root: pathlib.Path, segmentation_session: pathlib.Path, classification_session: pathlib.Path
) -> None:
    submit_run(segmentation_session, root)  # radiology/coralbay as "coralbay"
    before = snapshot(root)
    with pytest.raises(LeaderboardError, match="registry_name: 'radiology/voco_b'"):
        submit_run(classification_session, root, model_id="coralbay")
    assert snapshot(root) == before


def test_conflicting_model_details_are_refused(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    submit_run(segmentation_session, root, details=ModelDetails(display_name="CoralBay-B"))
    written = json.loads((root / "submissions/coralbay/btcv.json").read_text())
    assert written["display_name"] == "CoralBay-B"
    # A second task inherits the details...
    second = submit_run(segmentation_session, root, task_id="word").record
    assert second.display_name == "CoralBay-B"  # the entry as written
    assert json.loads((root / "submissions/coralbay/word.json").read_text())["display_name"] == (
        "CoralBay-B"
    )
    # ...and a contradicting detail is refused with nothing written.
    before = snapshot(root)
    with pytest.raises(LeaderboardError, match="display_name"):
        submit_run(
            segmentation_session,
            root,
            task_id="flare22",
            details=ModelDetails(display_name="Something else"),
        )
    assert snapshot(root) == before


def test_pretraining_datasets_are_stored_sorted(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    details = ModelDetails(pretraining_datasets=["lits", "btcv", "lits"])
    record = submit_run(segmentation_session, root, details=details).record
    assert record.pretraining_datasets == ("btcv", "lits")


def test_model_card(
    root: pathlib.Path, segmentation_session: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"display_name": "CoralBay-B", "parameters": 1000}))
    status = cli.main(
        [
            "leaderboard",
            "submit",
            str(segmentation_session),
            "--root",
            str(root),
            "--model-card",
            str(card),
            "--parameters",
            "2000",
        ]
    )
    assert status == 0
    record = json.loads((root / "submissions/coralbay/btcv.json").read_text())
    assert (record["display_name"], record["parameters"]) == ("CoralBay-B", 2000)
    card.write_text(json.dumps({"display_name": "x", "licence": "MIT"}))
    with pytest.raises(LeaderboardError, match="licence"):
        ModelDetails.from_card(card)


# --- bad input: a clear error naming the file, and nothing written ---------------------------


def _bad_session(tmp_path: pathlib.Path, values: list, **kwargs: str) -> pathlib.Path:
    return eva_output.write_session(
        tmp_path / "bad",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics(values),
        env=kwargs or None,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.8, math.nan, 0.7], r"not a finite number in 1 of 3 run\(s\) \(run 1: nan\)"),
        ([0.8, None], r"run 1: None\); a NaN or null metric"),
        ([0.8, 1.2], r"values\[1\] = 1.2 is outside the range of dice \[0.0, 1.0\]"),
        ([-0.1], r"is outside the range of dice"),
    ],
)
def test_bad_values(root: pathlib.Path, tmp_path: pathlib.Path, values: list, message: str) -> None:
    session = _bad_session(tmp_path, values)
    with pytest.raises(LeaderboardError, match=message) as error:
        submit_run(session, root)
    assert str(session / "results.json") in str(error.value)
    assert snapshot(root) == {}


def test_bare_nan_in_results_is_rejected(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    session = _bad_session(tmp_path, [0.8, math.nan])
    assert "NaN" in (session / "results.json").read_text()  # as Python's json.dump writes it
    with pytest.raises(LeaderboardError, match="NaN or null"):
        submit_run(session, root)


@pytest.mark.parametrize(
    ("model_id", "task_id", "message"),
    [
        ("../x", None, "invalid model id '../x'"),
        ("a/b", None, "invalid model id 'a/b'"),
        ("", None, "invalid model id ''"),
        ("CoralBay", None, "invalid model id 'CoralBay'"),
        ("x" * 65, None, "invalid model id"),
        (None, "no_such_task", "unknown task 'no_such_task'"),
    ],
)
def test_bad_ids(
    root: pathlib.Path,
    segmentation_session: pathlib.Path,
    model_id: str | None,
    task_id: str | None,
    message: str,
) -> None:
    with pytest.raises(LeaderboardError, match=message):
        submit_run(segmentation_session, root, model_id=model_id, task_id=task_id)
    assert snapshot(root) == {}


def test_inferred_unsafe_model_name_is_refused(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    session = _bad_session(tmp_path, [0.8], MODEL_NAME="radiology/..")
    with pytest.raises(LeaderboardError, match="invalid model id"):
        submit_run(session, root)
    assert snapshot(root) == {}


def test_malformed_results_json(root: pathlib.Path, segmentation_session: pathlib.Path) -> None:
    results = segmentation_session / "results.json"
    results.write_text(results.read_text()[:-20])
    with pytest.raises(LeaderboardError, match="malformed JSON") as error:
        submit_run(segmentation_session, root)
    assert str(results) in str(error.value)
    results.write_text('{"metrics": {"val": "oops"}}')
    with pytest.raises(LeaderboardError, match="not an eva results file"):
        submit_run(segmentation_session, root)
    assert snapshot(root) == {}


def test_malformed_config_yaml(root: pathlib.Path, segmentation_session: pathlib.Path) -> None:
    config = segmentation_session / "config.yaml"
    config.write_text("trainer:\n  init_args: [unclosed\n")
    with pytest.raises(LeaderboardError, match="malformed YAML") as error:
        submit_run(segmentation_session, root)
    assert str(config) in str(error.value)
    config.unlink()
    with pytest.raises(LeaderboardError, match=r"config\.yaml: missing"):
        submit_run(segmentation_session, root)
    assert snapshot(root) == {}


def test_results_without_the_metric(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    session = eva_output.write_session(
        tmp_path / "out",
        eva_output.SEGMENTATION_TEMPLATE,
        {"val": [{"val/AverageLoss": [0.3], "val/MeanIoU": [0.6]}]},
    )
    with pytest.raises(LeaderboardError, match=r"no test/DiceScore or val/DiceScore") as error:
        submit_run(session, root)
    assert "val/MeanIoU" in str(error.value)  # it lists what the file has
    assert str(session / "results.json") in str(error.value)
    assert snapshot(root) == {}


def test_metric_of_another_kind_is_refused(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    session = _bad_session(tmp_path, [0.8], DICE_AVERAGE="micro", DICE_INCLUDE_BACKGROUND="true")
    with pytest.raises(LeaderboardError, match="not 'macro'") as error:
        submit_run(session, root)
    assert "include_background" in str(error.value)
    probe = eva_output.write_session(
        tmp_path / "probe",
        eva_output.CLASSIFICATION_TEMPLATE,
        eva_output.classification_metrics([0.9]),
        env={"ACCURACY_AVERAGE": "micro"},
    )
    with pytest.raises(LeaderboardError, match="only 'macro' is balanced accuracy"):
        submit_run(probe, root)
    assert snapshot(root) == {}


def test_unknown_metric_in_a_record_is_refused() -> None:
    record = {"schema_version": 1, "metric": "auroc"}
    assert schema.record_problems(record, BUILTIN)  # missing fields
    with pytest.raises(LeaderboardError, match="unknown metric 'auroc'"):
        from eva_coralbay.leaderboard.metrics import get_metric

        get_metric("auroc")


def test_several_sessions_need_a_choice(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for session in ("20260101-000000000000_aaaaaaaa", "20260102-000000000000_bbbbbbbb"):
        eva_output.write_session(
            tmp_path / "btcv",
            eva_output.SEGMENTATION_TEMPLATE,
            eva_output.segmentation_metrics([0.7]),
            session=session,
        )
    with pytest.raises(LeaderboardError, match="holds 2 eva sessions"):
        submit_run(tmp_path / "btcv", root)
    with pytest.raises(LeaderboardError, match="no such file or folder"):
        submit_run(tmp_path / "nothing", root)


def test_cli_reports_errors_with_nonzero_status(
    root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _bad_session(tmp_path, [0.8, math.nan])
    status = cli.main(["leaderboard", "submit", str(session), "--root", str(root)])
    assert status == 1
    assert f"error: {session / 'results.json'}" in capsys.readouterr().err
    assert snapshot(root) == {}


def test_per_case_scores_are_stored_content_addressed(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    import pandas as pd

    scores = pd.DataFrame(
        {
            "case_id": ["a", "a", "b", "b"],
            "class": ["spleen", "liver"] * 2,
            "score": [0.9, 0.8, 0.7, float("nan")],
        }
    )
    scores.to_parquet(segmentation_session / eva_run.PER_CASE_FILE)
    record = submit_run(segmentation_session, root).record
    sha = record.per_case_sha256
    stored = root / "submissions" / "coralbay" / "per_case" / f"{sha}.parquet"
    assert record.per_case_file == f"per_case/{sha}.parquet"
    assert stored.read_bytes() == (segmentation_session / eva_run.PER_CASE_FILE).read_bytes()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"case_id": ["a"], "score": [0.5]}, "missing column 'class'"),
        ({"case_id": ["a"], "class": ["x"], "score": [1.5]}, "scores outside"),
        ({"case_id": ["a"], "class": ["x"], "score": [float("inf")]}, "infinite"),
    ],
)
def test_bad_per_case_file(
    root: pathlib.Path, segmentation_session: pathlib.Path, frame: dict, message: str
) -> None:
    import pandas as pd

    path = segmentation_session / eva_run.PER_CASE_FILE
    pd.DataFrame(frame).to_parquet(path)
    with pytest.raises(LeaderboardError, match=message) as error:
        submit_run(segmentation_session, root)
    assert str(path) in str(error.value)
    path.write_bytes(b"not parquet")
    with pytest.raises(LeaderboardError, match="not a readable parquet file"):
        submit_run(segmentation_session, root)
    assert snapshot(root) == {}


def test_per_case_file_missing_cases_of_other_processes_is_refused(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    import pandas as pd

    # As the evaluation callback writes it in a 2-process run: process 0 scored cases a and b
    # of the 4-case val set; the test set (one process) is complete.
    frame = pd.DataFrame(
        {
            "run": [0, 0, 0, 0, 0, 0],
            "stage": ["val"] * 4 + ["test"] * 2,
            "dataloader": [0] * 6,
            "case_id": ["a", "a", "b", "b", "c", "d"],
            "class": ["spleen", "liver"] * 2 + ["spleen"] * 2,
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            "dataset_size": [4] * 4 + [2] * 2,
            "world_size": [2] * 4 + [1] * 2,
        }
    )
    path = segmentation_session / eva_run.PER_CASE_FILE
    frame.to_parquet(path)
    with pytest.raises(LeaderboardError) as error:
        submit_run(segmentation_session, root)
    message = str(error.value)
    assert message.startswith(f"{path}: invalid per-case score file")
    assert (
        "run 0, stage val, dataloader 0 scored 2 of the dataset's 4 cases, 2 missing: written by "
        "process 0 of a 2-process run" in message
    )
    assert "stage test" not in message
    assert snapshot(root) == {}
    # Complete, or without the sizes (files from before they were recorded): accepted.
    frame.assign(dataset_size=[2] * 6).to_parquet(path)
    submit_run(segmentation_session, root)
    frame.drop(columns=["dataset_size"]).to_parquet(path)
    submit_run(segmentation_session, root, replace=True)
