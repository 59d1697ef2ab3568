"""What runs on the machine for one job: eva as a subprocess, its log, its record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.sweeps import records
from eva_coralbay.sweeps.plan import Job


def run_job(
    job: Job,
    *,
    launcher: str = "local",
    slurm_job_id: str | None = None,
    stop: threading.Event | None = None,
    threads: int | None = None,
) -> records.JobRecord:
    """Runs one job to its end under its lock and records the outcome; never raises for eva.

    Args:
        job: The job.
        launcher: "local" or "slurm" (recorded).
        slurm_job_id: The SLURM job id (recorded).
        stop: When set while eva runs, eva is terminated and the job recorded as cancelled.
        threads: The intra-op threads eva may use (`OMP_NUM_THREADS`), unless the environment
            or the job already sets them; None leaves torch's default (every core).

    Raises:
        records.LockedError: When another process is running this job.
    """
    with records.locked(job.folder):
        fingerprint = job.fingerprint()
        records.set_aside(job.folder)
        record = records.JobRecord(
            task_id=job.task_id,
            state="running",
            fingerprint=fingerprint,
            launcher=launcher,
            slurm_job_id=slurm_job_id,
            started=records.now(),
        )
        record.write(job.folder)
        started = time.monotonic()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **job.env}
        if threads is not None:
            environment.setdefault("OMP_NUM_THREADS", str(threads))
        with job.log.open("w", encoding="utf-8") as log:
            log.write(f"$ {' '.join(job.command(sys.executable))}\n")
            log.write("".join(f"  {key}={value}\n" for key, value in sorted(job.env.items())))
            log.flush()
            process = subprocess.Popen(
                job.command(sys.executable),
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that a cancel ends eva's data workers too
            )
            cancelled = _wait(process, stop)
        record.wall_seconds = round(time.monotonic() - started, 1)
        record.finished = records.now()
        record.exit_code = process.returncode
        if cancelled:
            record.state, record.message = "cancelled", "cancelled while running"
        elif process.returncode != 0:
            record.state = "failed"
            record.message = f"eva exited with {process.returncode}; see {job.log}"
        else:
            try:
                outcome = records.read_outcome(job.output_root, job.scored_task)
            except LeaderboardError as error:
                record.state, record.message = "failed", f"no usable results: {error}"
            else:
                record.state = "done"
                record.metric = outcome.metric
                record.metric_key = outcome.metric_key
                record.protocol_hash = outcome.protocol_hash
        record.write(job.folder)
        return record


def _wait(process: subprocess.Popen[Any], stop: threading.Event | None) -> bool:
    """Waits for eva; returns whether it was stopped."""
    while True:
        try:
            process.wait(timeout=0.5)
            return False
        except subprocess.TimeoutExpired:
            if stop is not None and stop.is_set():
                _terminate(process)
                return True


def _terminate(process: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


class SlurmTask:
    """The callable submitit pickles and runs on a SLURM node, resubmitted once if preempted.

    submitit calls `checkpoint` when SLURM signals a time-out or preemption; returning a
    `DelayedSubmission` of the same task requeues it (eva then starts the task's runs anew: its
    configs keep no resumable trainer state).
    """

    def __init__(self, job: Job) -> None:
        """Keeps the job to run."""
        self.job = job

    def __call__(self) -> records.JobRecord:
        """Runs the job on the node."""
        slurm_job_id = os.environ.get("SLURM_JOB_ID")
        return run_job(self.job, launcher="slurm", slurm_job_id=slurm_job_id)

    def checkpoint(self) -> Any:
        """Asks submitit to requeue this task."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)
