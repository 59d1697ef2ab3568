"""Planning, resuming and locking of `coralbay evaluate`, without running eva."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest

from eva_coralbay import cli, demo, tasks
from eva_coralbay.leaderboard import tasks as leaderboard_tasks
from eva_coralbay.sweeps import launch, records
from eva_coralbay.sweeps import plan as planning
from tests.leaderboard import eva_output

CONFIGS = demo.configs_root()
RANDOM = planning.ModelSpec("radiology/coralbay_random", kwargs={"feature_size": 12})


def _plan(tmp_path: pathlib.Path, task_ids: str, *sets: str, model=RANDOM) -> list[planning.Job]:
    return planning.plan(
        model,
        planning.select_tasks(task_ids),
        output=tmp_path / "out",
        configs_root=CONFIGS,
        data_root=tmp_path / "data",
        assignments=sets,
    )


def test_task_selection_by_type_list_and_bad_ids() -> None:
    classification = planning.select_tasks("classification")
    assert {record.id for record in classification} == {
        record.id
        for record in tasks.BENCHMARKS
        if record.type == "classification" and record.config and not record.synthetic
    }
    assert all(not record.synthetic for record in planning.select_tasks("all"))
    assert [record.id for record in planning.select_tasks("word,btcv,word")] == ["word", "btcv"]
    with pytest.raises(
        planning.PlanError, match=r"unknown task 'btvc' \(did you mean btcv\?\).*lits17"
    ):
        planning.select_tasks("btvc")
    # Every leaderboard task ships a config; a record without one cannot be planned.
    unshipped = [
        dataclasses.replace(record, config=None) if record.id == "cc-ccii" else record
        for record in tasks.BENCHMARKS
    ]
    with pytest.raises(planning.PlanError, match="cc-ccii has no shipped config"):
        planning.select_tasks("cc-ccii", leaderboard_tasks.Registry(unshipped))


def test_jobs_carry_the_config_the_data_and_the_model(tmp_path: pathlib.Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    trained_at_2mm = {"orientation": "RAS", "spacing": [2.0, 2.0, 2.0]}
    (export / "config.json").write_text(
        json.dumps({"feature_size": 24, "preprocessing": trained_at_2mm})
    )
    model = planning.ModelSpec("radiology/coralbay", checkpoint=str(export))
    segmentation, probe = _plan(tmp_path, "btcv,organmnist", model=model)

    assert (segmentation.eva_command, probe.eva_command) == ("fit", "predict_fit")
    assert segmentation.config == CONFIGS / "radiology/online/segmentation/btcv.yaml"
    assert segmentation.folder == tmp_path / "out" / "export" / "btcv"
    assert segmentation.env["DATA_ROOT"] == str(tmp_path / "data" / "btcv")
    assert segmentation.env["OUTPUT_ROOT"] == str(segmentation.folder / "eva")
    # The decoder sees F channels, the probe the 24·F multi-scale embedding.
    assert (segmentation.env["IN_FEATURES"], probe.env["IN_FEATURES"]) == ("24", "576")
    assert json.loads(segmentation.env["MODEL_EXTRA_KWARGS"]) == {"checkpoint": str(export)}
    # The export's own preprocessing reaches the configs.
    assert segmentation.env["PROFILE"] == "{orientation: RAS, spacing: [2.0, 2.0, 2.0]}"
    # Only variables the config reads are set.
    assert set(segmentation.env) <= planning.config_variables(segmentation.config)


def test_settings_are_checked_against_the_variables_the_configs_read(
    tmp_path: pathlib.Path,
) -> None:
    btcv, probe = _plan(tmp_path, "btcv,organmnist", "MAX_STEPS=7", "btcv:ROI_SIZE=[64, 64, 64]")
    assert btcv.env["MAX_STEPS"] == probe.env["MAX_STEPS"] == "7"
    assert btcv.env["ROI_SIZE"] == "[64, 64, 64]" and "ROI_SIZE" not in probe.env

    with pytest.raises(planning.PlanError, match=r"MAX_STEP\b.*did you mean MAX_STEPS"):
        _plan(tmp_path, "btcv", "MAX_STEP=7")
    with pytest.raises(planning.PlanError, match=r"organmnist\.yaml"):
        _plan(tmp_path, "organmnist", "organmnist:ROI_SIZE=[64, 64, 64]")
    with pytest.raises(planning.PlanError, match="evaluate sets it"):
        _plan(tmp_path, "btcv", "DATA_ROOT=/elsewhere")
    with pytest.raises(planning.PlanError, match="btvc: not a task id"):
        _plan(tmp_path, "btcv", "btvc:MAX_STEPS=7")
    # eva's own backbones have no F this plan could know: it asks for the width.
    voco = planning.ModelSpec("radiology/voco_b")
    with pytest.raises(planning.PlanError, match="--set IN_FEATURES"):
        _plan(tmp_path, "btcv", model=voco)
    assert _plan(tmp_path, "btcv", "IN_FEATURES=48", model=voco)[0].env["IN_FEATURES"] == "48"


def test_fingerprint_follows_the_protocol_not_the_paths(tmp_path: pathlib.Path) -> None:
    (job,) = _plan(tmp_path, "btcv")
    (moved,) = planning.plan(
        RANDOM,
        planning.select_tasks("btcv"),
        output=tmp_path / "elsewhere",
        configs_root=CONFIGS,
        data_root=tmp_path / "other-data",
    )
    (longer,) = _plan(tmp_path, "btcv", "MAX_STEPS=7")
    assert job.fingerprint() == moved.fingerprint() != longer.fingerprint()


def _finish(job: planning.Job) -> None:
    """Leaves the job's folder as a successful run leaves it: eva's session and the record."""
    eva_output.write_session(
        job.output_root,
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics(eva_output.dice_runs(0.8)),
    )
    outcome = records.read_outcome(job.output_root, job.scored_task)
    records.JobRecord(
        job.task_id,
        "done",
        job.fingerprint(),
        metric=outcome.metric,
        metric_key=outcome.metric_key,
        protocol_hash=outcome.protocol_hash,
    ).write(job.folder)


def test_complete_tasks_are_skipped_stale_ones_refused_and_force_reruns(
    tmp_path: pathlib.Path,
) -> None:
    (job,) = _plan(tmp_path, "btcv")
    assert launch.decide([job], force=False)[0].action == "run"
    _finish(job)

    (decision,) = launch.decide([job], force=False)
    assert decision.action == "skip" and "val/DiceScore = 0.80" in decision.reason
    (changed,) = _plan(tmp_path, "btcv", "MAX_STEPS=7")
    (decision,) = launch.decide([changed], force=False)
    assert decision.action == "refuse" and "--force" in decision.reason
    assert launch.decide([changed], force=True)[0].action == "run"
    # An unfinished attempt is rerun, and its files are kept aside, not deleted.
    records.JobRecord(job.task_id, "failed", job.fingerprint()).write(job.folder)
    assert launch.decide([job], force=False)[0].action == "run"
    kept = records.set_aside(job.folder)
    assert kept is not None and list((kept / "eva").rglob("results.json"))
    assert not job.output_root.exists()


def test_a_job_held_by_another_evaluate_is_skipped(tmp_path: pathlib.Path) -> None:
    (job,) = _plan(tmp_path, "btcv")
    with records.locked(job.folder):
        (decision,) = launch.decide([job], force=True)
        assert decision.action == "skip" and "another coralbay evaluate" in decision.reason
        with pytest.raises(records.LockedError), records.locked(job.folder):
            pass
    assert launch.decide([job], force=False)[0].action == "run"


def test_a_folder_of_another_model_is_refused(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "out" / "coralbay"
    records.check_model_folder(folder, RANDOM.to_dict(), force=False)
    other = planning.ModelSpec("radiology/coralbay_random", kwargs={"feature_size": 24})
    with pytest.raises(ValueError, match="holds results of another model"):
        records.check_model_folder(folder, other.to_dict(), force=False)
    records.check_model_folder(folder, other.to_dict(), force=True)
    foreign = tmp_path / "foreign"
    (foreign / "something").mkdir(parents=True)
    with pytest.raises(ValueError, match="not written by coralbay evaluate"):
        records.check_model_folder(foreign, RANDOM.to_dict(), force=False)


def test_command_line_refuses_bad_input_before_anything_runs(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["evaluate", "--output", str(tmp_path / "out"), "--data-root", str(tmp_path)]
    assert cli.main([*common, "--model", "radiology/coralbey"]) == 2
    assert "did you mean radiology/coralbay" in capsys.readouterr().err
    assert cli.main([*common, "--tasks", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert cli.main([*common, "--tasks", "btcv", "--set", "NOT_A_SETTING=1"]) == 2
    assert "NOT_A_SETTING: not read by btcv.yaml" in capsys.readouterr().err
    assert cli.main([*common, "--tasks", "btcv", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "btcv" in out and "not run yet" in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert cli.main(["evaluate", "--status", str(tmp_path)]) == 1
    assert "no coralbay evaluate jobs" in capsys.readouterr().err


def test_label_efficiency_variants_run_segmentation_on_nested_subsets(
    tmp_path: pathlib.Path,
) -> None:
    jobs = planning.plan(
        RANDOM,
        planning.select_tasks("btcv,organmnist"),
        output=tmp_path / "out",
        configs_root=CONFIGS,
        data_root=tmp_path / "data",
        train_cases=planning.parse_train_cases("1,5,all"),
    )
    assert [job.task_id for job in jobs] == ["btcv@1", "btcv@5", "btcv", "organmnist"]
    one, five, every, probe = jobs
    assert (one.env["TRAIN_CASES"], five.env["TRAIN_CASES"]) == ("1", "5")
    assert "TRAIN_CASES" not in every.env and "TRAIN_CASES" not in probe.env
    assert one.env["OUTPUT_ROOT"] == str(tmp_path / "out" / "coralbay_random" / "btcv@1" / "eva")
    assert one.env["DATA_ROOT"] == every.env["DATA_ROOT"]
    assert len({one.fingerprint(), five.fingerprint(), every.fingerprint()}) == 3
    # A finished variant is complete and scored like its task.
    _finish(five)
    assert launch.decide([five], force=False)[0].action == "skip"
    with pytest.raises(planning.PlanError, match="'0' is not a positive count"):
        planning.parse_train_cases("0,all")


def test_probe_variants_cap_the_training_samples_of_each_class(tmp_path: pathlib.Path) -> None:
    jobs = planning.plan(
        RANDOM,
        planning.select_tasks("btcv,organmnist"),
        output=tmp_path / "out",
        configs_root=CONFIGS,
        data_root=tmp_path / "data",
        train_cases=planning.parse_train_cases("2"),
        train_samples_per_class=planning.parse_train_cases("1,all", "--train-samples-per-class"),
    )
    assert [job.task_id for job in jobs] == ["btcv@2", "organmnist@1", "organmnist"]
    segmentation, one, every = jobs
    assert segmentation.env["TRAIN_CASES"] == "2"
    assert "TRAIN_SAMPLES_PER_CLASS" not in segmentation.env
    assert one.env["TRAIN_SAMPLES_PER_CLASS"] == "1" and "TRAIN_CASES" not in one.env
    assert "TRAIN_SAMPLES_PER_CLASS" not in every.env
    assert one.env["EMBEDDINGS_ROOT"] != every.env["EMBEDDINGS_ROOT"]
    assert one.fingerprint() != every.fingerprint()
    with pytest.raises(planning.PlanError, match="--train-samples-per-class '0'"):
        planning.parse_train_cases("0", "--train-samples-per-class")


_STAND_IN_FOR_EVA = """
import os, pathlib, sys, time
folder, wait = pathlib.Path(sys.argv[1]), sys.argv[2] == "wait"
(folder / "threads").write_text(os.environ.get("OMP_NUM_THREADS", "unset"))
(folder / "started").touch()
deadline = time.monotonic() + 60
while wait and time.monotonic() < deadline:  # until the other job has started too
    if any(path.parent != folder for path in folder.parent.glob("*/started")):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(3 if wait else 0)
"""


@pytest.mark.parametrize("max_parallel", [1, 2])
def test_local_jobs_side_by_side_share_the_cores(
    tmp_path: pathlib.Path, max_parallel: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    jobs = _plan(tmp_path, "btcv,word")
    # Each job stands in for eva and records its threads; side by side, each also waits for the
    # other to start, so it exits 0 only when both ran at once.
    wait = "wait" if max_parallel > 1 else "no-wait"
    monkeypatch.setattr(
        planning.Job,
        "command",
        lambda job, python: [python, "-c", _STAND_IN_FOR_EVA, str(job.folder), wait],
    )
    for job in jobs:
        job.folder.mkdir(parents=True)
    outcomes = launch.run_local(jobs, max_parallel=max_parallel)
    assert [outcome.exit_code for outcome in outcomes] == [0, 0]
    threads = [(job.folder / "threads").read_text() for job in jobs]
    if max_parallel == 1:
        assert threads == ["unset", "unset"]  # one job at a time keeps torch's default
    else:
        assert threads == [str(launch.threads_per_job(2))] * 2
