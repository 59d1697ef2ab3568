"""`coralbay evaluate` on a real single-node SLURM cluster, through submitit."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from eva_coralbay import cli, demo
from eva_coralbay.leaderboard import builtin_registry, eva_run
from eva_coralbay.sweeps import launch, records

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
ORGANS = demo.PHANTOM_ORGANS_TASK
MODEL_ID = "coralbay-random"

pytestmark = pytest.mark.slow


def _evaluate_arguments(phantoms: pathlib.Path, work: pathlib.Path) -> list[str]:
    """The demo's own `coralbay evaluate` call for the random encoder, at the smoke sizes."""
    dataset = demo.write_phantom_benchmark(phantoms.parent, demo.SMOKE.phantoms)
    steps = demo.plan(work / "demo", dataset, demo.SMOKE, pretrain_steps=None)
    (step,) = [
        step for step in steps if step.command[3:4] == ["evaluate"] and MODEL_ID in step.title
    ]
    assert step.before is not None
    step.before()  # writes the model card and the phantom tasks into the leaderboard's tasks.yaml
    arguments = list(step.command[3:])
    arguments[arguments.index("--output") + 1] = str(work / "runs")
    assert arguments[arguments.index("--leaderboard-root") + 1] == str(_board(work))
    return arguments


def _board(work: pathlib.Path) -> pathlib.Path:
    """The leaderboard root of the demo planned in `work`."""
    return work / "demo" / "leaderboard"


def _task_folder(work: pathlib.Path, task_id: str) -> pathlib.Path:
    return work / "runs" / MODEL_ID / task_id


def test_slurm_sweep_runs_submits_skips_when_complete_and_isolates_a_broken_task(
    slurm: dict[str, str],
    phantoms: pathlib.Path,
    luna25: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Two probes (the demo test runs segmentation) and a task whose data is missing.
    arguments = _evaluate_arguments(phantoms, tmp_path)
    arguments[arguments.index("--tasks") + 1] = f"{ORGANS},luna25,msd_task9_spleen"
    missing = tmp_path / "no-spleen-here"
    luna25_settings = [
        f"luna25:{setting}" for setting in ("N_RUNS=1", "MAX_STEPS=4", "N_DATA_WORKERS=0")
    ]
    arguments += ["--data", f"luna25={luna25}"]
    arguments += [part for setting in luna25_settings for part in ("--set", setting)]
    slurm_arguments = ["--launcher", "slurm", "--cpus-per-task", "1"]

    assert cli.main([*arguments, "--data", f"msd_task9_spleen={missing}", *slurm_arguments]) == 1

    output = capsys.readouterr()
    for task_id in (ORGANS, "luna25"):
        record = records.JobRecord.read(_task_folder(tmp_path, task_id))
        assert record is not None and record.state == "done", output.out + output.err
        assert record.launcher == "slurm" and record.slurm_job_id is not None
        assert record.metric is not None and 0.0 <= record.metric <= 1.0
        assert list((_task_folder(tmp_path, task_id) / "eva").rglob("results.json"))
        submission = _board(tmp_path) / "submissions" / MODEL_ID / f"{task_id}.json"
        assert json.loads(submission.read_text())["mean"] == pytest.approx(record.metric)
    assert (_board(tmp_path) / "leaderboard.parquet").is_file()
    # The run names its task by its dataset class: `coralbay leaderboard submit` infers it.
    luna25_run = eva_run.read_run(_task_folder(tmp_path, "luna25") / "eva")
    assert eva_run.infer_task(luna25_run, builtin_registry()) == "luna25"
    # The task whose data is missing fails alone, named with its path, before anything ran.
    broken = records.JobRecord.read(_task_folder(tmp_path, "msd_task9_spleen"))
    assert broken is not None and broken.state == "failed" and str(missing) in broken.message
    assert str(missing) in output.err

    # A second call finds both tasks complete and runs nothing.
    finished = {
        task_id: (_task_folder(tmp_path, task_id) / records.RECORD_FILE).stat().st_mtime_ns
        for task_id in (ORGANS, "luna25")
    }
    arguments[arguments.index("--tasks") + 1] = f"{ORGANS},luna25"
    arguments.remove("--submit")
    assert cli.main([*arguments, *slurm_arguments]) == 0
    assert "skipped (done)" in capsys.readouterr().out
    for task_id, modified in finished.items():
        assert (
            _task_folder(tmp_path, task_id) / records.RECORD_FILE
        ).stat().st_mtime_ns == modified


def _wait_for(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {seconds} s")


def test_no_wait_then_status_and_ctrl_c_cancels_the_queued_jobs(
    slurm: dict[str, str],
    phantoms: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = _evaluate_arguments(phantoms, tmp_path)
    arguments[arguments.index("--tasks") + 1] = ORGANS
    # Held in the queue for an hour: the jobs stay pending while the test looks at them.
    held = ["--launcher", "slurm", "--slurm-option", "begin=now+3600"]

    assert cli.main([*arguments, *held, "--no-wait"]) == 0
    record = records.JobRecord.read(_task_folder(tmp_path, ORGANS))
    assert record is not None and record.state == "submitted"
    capsys.readouterr()
    assert cli.main(["evaluate", "--status", str(tmp_path / "runs")]) == 0
    assert "SLURM: PENDING" in capsys.readouterr().out
    # A second sweep of the same folder does not submit the queued task again.
    assert cli.main([*arguments, *held, "--no-wait"]) == 0
    assert f"queued on SLURM as job {record.slurm_job_id}" in capsys.readouterr().out
    subprocess.run(["scancel", str(record.slurm_job_id)], check=True)

    # Ctrl-C while waiting cancels what the sweep submitted.
    other = tmp_path / "interrupted"
    arguments[arguments.index("--output") + 1] = str(other)
    process = subprocess.Popen(
        [sys.executable, "-m", "eva_coralbay.cli", *arguments, *held],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    folder = other / MODEL_ID / ORGANS

    def submitted() -> bool:
        found = records.JobRecord.read(folder)
        return found is not None and found.state == "submitted"

    _wait_for(submitted)
    job_id = records.JobRecord.read(folder).slurm_job_id  # type: ignore[union-attr]
    assert job_id in launch.slurm_queue([job_id])
    process.send_signal(signal.SIGINT)
    log, _ = process.communicate(timeout=60)
    assert process.returncode == 130, log
    cancelled = records.JobRecord.read(folder)
    assert cancelled is not None and cancelled.state == "cancelled", log
    _wait_for(lambda: job_id not in launch.slurm_queue([job_id]), seconds=30)
