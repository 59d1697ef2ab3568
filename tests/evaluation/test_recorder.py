import json
import math
import pathlib
import statistics

import pytest
from eva.core.trainers import _recorder

from eva_coralbay.evaluation import NanSafeResults
from tests.conftest import run_python


@pytest.fixture(autouse=True)
def _nan_safe() -> None:
    NanSafeResults()  # as a config listing the callback builds it


def _reject_non_json_constants(token: str) -> float:
    raise AssertionError(f"results.json holds the non-JSON token {token}")


def _save_session(output_dir: pathlib.Path, runs: list[dict[str, float]]) -> dict:
    recorder = _recorder.SessionRecorder(output_dir=str(output_dir), verbose=True)
    for run in runs:
        recorder.update(validation_scores=[run], test_scores=[run])
    recorder.save()
    text = (output_dir / "results.json").read_text()
    return json.loads(text, parse_constant=_reject_non_json_constants)


def test_nan_metric_over_several_runs_is_recorded_as_null(tmp_path: pathlib.Path) -> None:
    runs = [
        {"val/DiceScore": 0.61, "val/DiceScore_3_left_kidney": math.nan},
        {"val/DiceScore": 0.65, "val/DiceScore_3_left_kidney": 0.4},
        {"val/DiceScore": 0.66, "val/DiceScore_3_left_kidney": math.nan},
    ]
    results = _save_session(tmp_path, runs)

    for stage in ("val", "test"):
        summary = results["metrics"][stage][0]
        dice = summary["val/DiceScore"]
        assert dice["values"] == [0.61, 0.65, 0.66]
        assert dice["mean"] == pytest.approx(statistics.mean([0.61, 0.65, 0.66]))
        assert dice["stdev"] == pytest.approx(statistics.stdev([0.61, 0.65, 0.66]))
        kidney = summary["val/DiceScore_3_left_kidney"]
        assert kidney == {"mean": None, "stdev": None, "values": [None, 0.4, None]}


def test_single_nan_run_writes_valid_json(tmp_path: pathlib.Path) -> None:
    results = _save_session(tmp_path, [{"test/BalancedAccuracy": math.nan}])
    assert results["metrics"]["val"][0]["test/BalancedAccuracy"]["values"] == [None]


def test_finite_session_keeps_eva_numbers(tmp_path: pathlib.Path) -> None:
    results = _save_session(tmp_path, [{"m": 0.5}, {"m": 0.7}])
    summary = results["metrics"]["val"][0]["m"]
    assert summary["mean"] == pytest.approx(0.6)
    assert summary["stdev"] == pytest.approx(statistics.stdev([0.5, 0.7]))


def test_only_the_listed_callback_changes_evas_recorder() -> None:
    # In a fresh process: importing the package (as PerCaseScores' class path does) leaves eva's
    # recorder alone; building NanSafeResults installs the NaN-safe summary.
    code = (
        "from eva.core.trainers import _recorder\n"
        "original = _recorder._calculate_statistics\n"
        "import eva_coralbay.evaluation as evaluation\n"
        "print(_recorder._calculate_statistics is original)\n"
        "evaluation.NanSafeResults()\n"
        "print(_recorder._calculate_statistics is original)\n"
    )
    assert run_python(code).split() == ["True", "False"]
