"""Runs a sweep's jobs locally or on SLURM (through submitit), shows progress, collects them."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

from eva_coralbay.sweeps import records
from eva_coralbay.sweeps.job import SlurmTask, run_job
from eva_coralbay.sweeps.plan import Job

POLL_SECONDS = 2.0
"""How often a SLURM sweep looks at its jobs."""


@dataclasses.dataclass
class Decision:
    """Whether a job runs, and why (the dry-run table and the summary show it)."""

    job: Job
    action: str
    """"run", "skip" (complete, or held by another process) or "refuse" (stale results)."""
    reason: str


def decide(jobs: Sequence[Job], *, force: bool) -> list[Decision]:
    """What to do with each job given what its folder holds."""
    decisions = []
    for job in jobs:
        if records.is_locked(job.folder):
            decisions.append(Decision(job, "skip", "being run by another coralbay evaluate"))
            continue
        record = records.JobRecord.read(job.folder)
        if (
            record is not None
            and record.launcher == "slurm"
            and record.state in ("submitted", "running")
            and record.slurm_job_id in slurm_queue([record.slurm_job_id])
        ):
            decisions.append(Decision(job, "skip", f"queued on SLURM as job {record.slurm_job_id}"))
            continue
        state, why = records.completion(job.folder, job.fingerprint(), job.scored_task)
        if force:
            decisions.append(Decision(job, "run", f"--force ({state}: {why})"))
        elif state == "complete":
            decisions.append(Decision(job, "skip", f"complete: {why}"))
        elif state == "stale":
            decisions.append(
                Decision(job, "refuse", f"{why}; its results are kept, --force reruns it")
            )
        else:
            decisions.append(Decision(job, "run", why))
    return decisions


class Progress:
    """A live table of the sweep's jobs on the console (rich), refreshed from their records."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        """Prepares the table; use as a context manager."""
        from rich.console import Console
        from rich.live import Live

        self.jobs = list(jobs)
        self.started = time.monotonic()
        self.console = Console(highlight=False)
        self.live = Live(self._table(), console=self.console, refresh_per_second=1, transient=True)

    def __enter__(self) -> Progress:
        """Starts showing the table."""
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stops showing it."""
        self.live.__exit__(None, None, None)

    def refresh(self) -> None:
        """Redraws the table from the jobs' records and logs."""
        self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"coralbay evaluate  {time.monotonic() - self.started:5.0f} s")
        for column in ("task", "state", "latest output"):
            table.add_column(column)
        for job in self.jobs:
            record = records.JobRecord.read(job.folder)
            state = record.state if record else "queued"
            latest = _last_line(job.log) if state == "running" else ""
            table.add_row(Text(job.task_id), Text(state), Text(latest))
        return table


def _last_line(log: pathlib.Path, width: int = 80) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.split("\r")[-1].strip() for line in tail.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:width] if lines else ""


def run_local(
    jobs: Sequence[Job], *, max_parallel: int = 1, progress: Progress | None = None
) -> list[records.JobRecord]:
    """Runs the jobs on this machine, `max_parallel` at a time; Ctrl-C cancels all of them.

    Jobs that run side by side share the cores (`threads_per_job`): torch would otherwise give
    each of them a thread per core, and oversubscribed cores run every job slower.

    Raises:
        KeyboardInterrupt: After the running jobs were stopped and recorded as cancelled.
    """
    stop = threading.Event()
    parallel = max(1, min(max_parallel, len(jobs)))
    threads = threads_per_job(parallel) if parallel > 1 else None
    with futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        pending = {pool.submit(_run_unless_stopped, job, stop, threads): job for job in jobs}
        try:
            while not all(future.done() for future in pending):
                futures.wait(pending, timeout=1.0)
                if progress is not None:
                    progress.refresh()
        except KeyboardInterrupt:
            stop.set()
            futures.wait(pending)
            raise
    return [future.result() for future in pending]


def threads_per_job(parallel: int) -> int:
    """Intra-op threads for each of `parallel` jobs sharing this process's cores (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // parallel)


def _run_unless_stopped(job: Job, stop: threading.Event, threads: int | None) -> records.JobRecord:
    if stop.is_set():
        record = records.JobRecord(
            job.task_id, "cancelled", job.fingerprint(), message="not started"
        )
        record.write(job.folder)
        return record
    try:
        return run_job(job, stop=stop, threads=threads)
    except records.LockedError as error:
        return records.JobRecord(job.task_id, "failed", job.fingerprint(), message=str(error))


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """How each job asks SLURM for resources."""

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time_minutes: int = 24 * 60
    extra: dict[str, str] = dataclasses.field(default_factory=dict)
    """`--slurm-option KEY=VALUE`: any other sbatch option."""


def submit_slurm(jobs: Sequence[Job], options: SlurmOptions, log_folder: pathlib.Path) -> list[Any]:
    """Submits one SLURM job per task through submitit and records each as submitted.

    Returns:
        submitit's job handles, in the order of `jobs`.
    """
    import submitit

    executor = submitit.AutoExecutor(
        folder=str(log_folder / "%j"),
        cluster="slurm",
        slurm_max_num_timeout=1,  # one resubmission after a time-out or preemption
    )
    parameters: dict[str, Any] = {
        "timeout_min": options.time_minutes,
        "slurm_additional_parameters": dict(options.extra),
    }
    if options.partition:
        parameters["slurm_partition"] = options.partition
    if options.gpus_per_task is not None:
        parameters["slurm_gpus_per_task"] = options.gpus_per_task
    if options.cpus_per_task is not None:
        parameters["cpus_per_task"] = options.cpus_per_task
    if options.mem:
        parameters["slurm_mem"] = options.mem
    handles = []
    for job in jobs:
        executor.update_parameters(name=f"coralbay-{job.model_id}-{job.task_id}", **parameters)
        handle = executor.submit(SlurmTask(job))
        records.JobRecord(
            task_id=job.task_id,
            state="submitted",
            fingerprint=job.fingerprint(),
            launcher="slurm",
            slurm_job_id=str(handle.job_id),
            started=records.now(),
            message=f"submitit logs: {log_folder / str(handle.job_id)}",
        ).write(job.folder)
        handles.append(handle)
    return handles


def wait_slurm(
    jobs: Sequence[Job],
    handles: Sequence[Any],
    *,
    progress: Progress | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> list[records.JobRecord]:
    """Polls until every job has ended; Ctrl-C cancels the jobs still queued or running.

    The job's own record (written on the node) says how it ended; a job that ended without
    one (killed by SLURM before eva started, say) is recorded as failed with submitit's view.

    Raises:
        KeyboardInterrupt: After the unfinished jobs were cancelled and recorded so.
    """
    try:
        while True:
            queued = slurm_queue([str(handle.job_id) for handle in handles])
            ended = [str(handle.job_id) not in queued for handle in handles]
            if progress is not None:
                progress.refresh()
            if all(ended):
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for job, handle in zip(jobs, handles, strict=True):
            record = records.JobRecord.read(job.folder)
            if record is None or record.state not in records.FINAL_STATES:
                handle.cancel(check=False)
                cancelled = record or records.JobRecord(
                    job.task_id, "cancelled", job.fingerprint(), launcher="slurm"
                )
                cancelled.state = "cancelled"
                cancelled.message = f"SLURM job {handle.job_id} cancelled (Ctrl-C)"
                cancelled.finished = records.now()
                cancelled.write(job.folder)
        raise
    results = []
    for job, handle in zip(jobs, handles, strict=True):
        record = records.JobRecord.read(job.folder)
        if record is None or record.state not in records.FINAL_STATES:
            record = record or records.JobRecord(job.task_id, "failed", job.fingerprint())
            record.state = "failed"
            record.message = (
                f"SLURM job {handle.job_id} ended before eva finished; submitit's log: "
                f"{_submitit_log(handle)}"
            )
            record.finished = records.now()
            record.write(job.folder)
        results.append(record)
    return results


def _submitit_log(handle: Any) -> str:
    try:
        return str(handle.paths.stderr)
    except AttributeError:
        return "unknown"


def slurm_queue(job_ids: Sequence[str | None]) -> dict[str, str]:
    """The SLURM jobs among `job_ids` still in the queue, with their state (squeue).

    Accounting (sacct) is not needed: a job that left the queue has ended, and its own record
    says how.
    """
    ids = [job_id for job_id in job_ids if job_id]
    if not ids or shutil.which("squeue") is None:
        return {}
    result = subprocess.run(
        ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"],
        capture_output=True,
        text=True,
        check=False,
    )
    queue = {}
    for line in result.stdout.splitlines():
        job_id, _, state = line.strip().partition(" ")
        # An array or requeued job may show as <id>_<n>; the base id is what was recorded.
        queue[job_id.split("_")[0]] = state
    return queue


def status_rows(output: pathlib.Path) -> list[dict[str, Any]]:
    """Every job under a sweep folder with its recorded state; live SLURM states where queued."""
    folders = sorted(path.parent for path in output.glob(f"*/*/{records.RECORD_FILE}"))
    found = [(folder, records.JobRecord.read(folder)) for folder in folders]
    queue = slurm_queue(
        [record.slurm_job_id for _, record in found if record is not None and record.slurm_job_id]
    )
    rows = []
    for folder, record in found:
        if record is None:
            rows.append({"model": folder.parent.name, "task": folder.name, "state": "unreadable"})
            continue
        state = record.state
        if record.launcher == "slurm" and state in ("submitted", "running"):
            live = queue.get(record.slurm_job_id or "")
            state = f"{state} (SLURM: {live})" if live else f"{state} (not in the SLURM queue)"
        rows.append(
            {
                "model": folder.parent.name,
                "task": record.task_id,
                "state": state,
                "metric": record.metric,
                "wall_seconds": record.wall_seconds,
                "log": str(folder / "eva.log"),
                "message": record.message,
            }
        )
    return rows
