"""The main job: `coralbay demo`, reduced to a few steps per stage, from data to leaderboard."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

from eva_coralbay import cli, demo
from eva_coralbay.cli import evaluate as cli_evaluate
from eva_coralbay.data.synthetic import layouts
from eva_coralbay.leaderboard import Registry, robustness_record
from eva_coralbay.leaderboard.store import Store
from tests import hang_guard

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("coralbay-demo", "coralbay-random")
TASKS = (demo.PHANTOM_SEGMENTATION_TASK, demo.PHANTOM_ORGANS_TASK)


def _coralbay(*arguments: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return hang_guard.run_watched(
        [sys.executable, "-m", "eva_coralbay.cli", *arguments], cwd=cwd, env=environment
    )


def test_plan_uses_the_shipped_configs_and_commands(tmp_path: pathlib.Path) -> None:
    dataset = demo.write_phantom_benchmark(tmp_path / "data")
    steps = demo.plan(tmp_path / "out", dataset, demo.PRESETS["tiny"], pretrain_steps=None)

    commands = [step.command[2:4] for step in steps]
    assert commands[0] == ["eva_coralbay.cli", "pretrain"]
    assert commands[1] == ["eva_coralbay.cli", "export"]
    evaluations = [step for step in steps if step.command[3] == "evaluate"]
    robustness = [step for step in steps if step.command[3] == "robustness"]
    assert len(evaluations) == 2 and len(robustness) == 2 and len(steps) == 6
    # Each evaluation is `coralbay evaluate`: the jobs it plans are the shipped configs, for the
    # phantom tasks that the step declares in its leaderboard's tasks.yaml first.
    jobs = []
    for step in evaluations:
        assert step.before is not None
        step.before()  # as run_steps does
        arguments = cli.build_parser().parse_args(step.command[3:])
        assert arguments.submit and arguments.model_card is not None
        jobs += cli_evaluate._plan(arguments)[0]
    # The label-efficiency track's smallest version: the segmentation task on 1 case, too.
    one_case = f"{demo.PHANTOM_SEGMENTATION_TASK}@1"
    assert sorted((job.env["MODEL_NAME"], job.task_id) for job in jobs) == sorted(
        (name, task)
        for name in ("radiology/coralbay", "radiology/coralbay_random")
        for task in (*TASKS, one_case)
    )
    assert {job.env["TRAIN_CASES"] for job in jobs if job.task_id == one_case} == {"1"}
    # The robustness track's: one window shift of each model, on the validation phantoms.
    for step in robustness:
        arguments = cli.build_parser().parse_args(step.command[3:])
        assert arguments.perturbations == "window_soft_tissue"
        assert (arguments.task, arguments.data_root) == ("decathlon_format", dataset.root)
    registry = Registry.for_root(tmp_path / "out" / "leaderboard")
    assert [task.id for task in registry.declared()] == list(TASKS)
    assert all(task.synthetic for task in registry.declared())
    assert registry.get(demo.PHANTOM_ORGANS_TASK).eva_metric == "MulticlassAccuracy"
    for job in jobs:
        assert job.config.is_file() and job.config.is_relative_to(REPOSITORY / "configs")
        assert job.env["DATA_ROOT"] == str(dataset.root)
        # Segmentation counts the background; the organ probe only the six organs.
        expected_classes = 7 if job.eva_command == "fit" else 6
        assert job.env["NUM_CLASSES"] == str(expected_classes)
    pretrained = [job for job in jobs if job.env["MODEL_NAME"] == "radiology/coralbay"]
    assert {json.loads(job.env["MODEL_EXTRA_KWARGS"])["checkpoint"] for job in pretrained} == {
        str(tmp_path / "out" / "coralbay-demo")
    }
    # An ordinary Decathlon-layout dataset: 12 labelled cases, 4 of them named for validation.
    manifest = json.loads((dataset.root / "dataset.json").read_text())
    labelled = {case["image"] for case in manifest["training"]}
    assert len(labelled) == 12 and len(manifest["validation"]) == 4
    assert {f"./imagesTr/{case}.nii.gz" for case in manifest["validation"]} <= labelled
    assert len(dataset.pretraining_scans) == 8
    assert all(scan.is_file() for scan in dataset.pretraining_scans)


def test_missing_data_folder_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "no_such_benchmark"
    result = _coralbay(
        "demo", "--data", str(missing), "--output", str(tmp_path / "out"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert str(missing) in result.stdout and "no such folder" in result.stdout
    assert not (tmp_path / "out" / "leaderboard").exists()


@pytest.mark.slow(expected_s=140)  # the longest test: scheduled first
def test_reduced_main_job_publishes_all_results(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "demo"
    result = _coralbay("demo", "--preset", "smoke", "--output", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    export = output / "coralbay-demo"
    assert json.loads((export / "config.json").read_text())["feature_size"] == 12
    assert (export / "model.safetensors").stat().st_size > 0
    for model in MODELS:
        for task in TASKS:
            submission = output / "leaderboard" / "submissions" / model / f"{task}.json"
            record = json.loads(submission.read_text())
            assert record["model_id"] == model and record["task_id"] == task
            assert 0.0 <= record["mean"] <= 1.0
            assert list((output / "runs" / model / task).rglob("results.json"))
            assert list((output / "runs" / model / task).rglob("per_case_scores.parquet"))
        # The organ probe's per-case rows: one per organ patch of the validation phantom, named
        # after the embedding file eva wrote for it.
        session_file = min(
            (output / "runs" / model / demo.PHANTOM_ORGANS_TASK).rglob("per_case_scores.parquet"),
            key=lambda path: len(path.parts),
        )
        table = pd.read_parquet(session_file)
        validation = table[table["stage"] == "val"]
        assert len(validation) > 0 and set(validation["metric"]) == {"correct"}
        assert set(validation["class"]) <= set(layouts.PHANTOM_CLASSES[1:])
        assert all(
            case_id == f"phantom_003/{organ}.pt"
            for case_id, organ in zip(validation["case_id"], validation["class"], strict=True)
        )

    table = pd.read_parquet(output / "leaderboard" / "leaderboard.parquet")
    assert set(table["model_id"]) == set(MODELS)
    assert set(table["task_id"]) == set(TASKS)
    readme = (output / "leaderboard" / "README.md").read_text()
    assert "CoralBay demo (F=12, DINO)" in readme and "CoralBay random init (F=12)" in readme
    assert (output / "leaderboard" / "heatmap.png").stat().st_size > 0
    assert str(output / "leaderboard" / "README.md") in result.stdout
    assert str(output / "leaderboard" / "site" / "robustness.html") in result.stdout
    assert "all 6 steps done" in result.stdout
    # The side tracks: each model also trained on one case, and its embedding under one window.
    for model in MODELS:
        one_case = output / "runs" / model / f"{demo.PHANTOM_SEGMENTATION_TASK}@1"
        assert list(one_case.rglob("results.json"))
        record = robustness_record.read_record(output / "robustness" / f"{model}.json")
        (shift,) = record["perturbations"]
        assert shift["name"] == "window_soft_tissue" and -1.0 <= shift["mean_cosine"] <= 1.0
        boarded = output / "leaderboard" / "robustness" / f"{model}.json"
        assert robustness_record.read_record(boarded) == record
    # Both side tracks have their views on the board, out of the main table.
    assert "## Label efficiency" in readme and "## Robustness" in readme
    assert (output / "leaderboard" / "site" / "robustness.html").is_file()
    assert (output / "leaderboard" / "site" / "label-efficiency.html").is_file()

    validate = _coralbay(
        "leaderboard", "validate", "--root", str(output / "leaderboard"), cwd=tmp_path
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr

    # The demo's evaluation, run again by hand (the local launcher), finds both tasks complete.
    dataset = demo.write_phantom_benchmark(output / "data", demo.SMOKE.phantoms)
    steps = demo.plan(output, dataset, demo.SMOKE, pretrain_steps=None)
    evaluation = next(step for step in steps if step.command[3] == "evaluate")
    again = _coralbay(*evaluation.command[3:], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("skipped (done)") == len(TASKS) + 1, again.stdout  # and @1
    assert "submitted" not in again.stdout  # the entries exist: no duplicate history
    assert Store(output / "leaderboard").history_paths() == []
