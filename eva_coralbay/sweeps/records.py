"""Each job's state on disk: its record, its lock, and whether its results are complete."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any, Literal

from eva_coralbay import _io
from eva_coralbay.leaderboard import eva_run, protocol
from eva_coralbay.leaderboard import tasks as leaderboard_tasks
from eva_coralbay.leaderboard.errors import LeaderboardError

RECORD_FILE = "job.json"
LOCK_FILE = ".lock"
MODEL_FILE = "model.json"

State = Literal["planned", "submitted", "running", "done", "failed", "cancelled"]
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


@dataclasses.dataclass
class JobRecord:
    """What is known about one job; written atomically to `<job folder>/job.json`."""

    task_id: str
    state: State
    fingerprint: str
    launcher: str = "local"
    slurm_job_id: str | None = None
    started: str | None = None
    finished: str | None = None
    wall_seconds: float | None = None
    exit_code: int | None = None
    metric: float | None = None
    metric_key: str | None = None
    protocol_hash: str | None = None
    message: str = ""

    def write(self, folder: pathlib.Path) -> None:
        """Writes the record atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_text(
            folder / RECORD_FILE, json.dumps(dataclasses.asdict(self), indent=2) + "\n"
        )

    @classmethod
    def read(cls, folder: pathlib.Path) -> JobRecord | None:
        """The record in `folder`, or None when there is none or it is unreadable."""
        path = folder / RECORD_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            known = {field.name for field in dataclasses.fields(cls)}
            return cls(**{key: value for key, value in values.items() if key in known})
        except (OSError, ValueError, TypeError):
            return None


def now() -> str:
    """The current UTC time, ISO formatted to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class LockedError(RuntimeError):
    """Another `coralbay evaluate` holds the job."""


@contextlib.contextmanager
def locked(folder: pathlib.Path) -> Iterator[None]:
    """Holds the job's lock: a second evaluation of the same output folder skips the job.

    An `flock` is released by the kernel when its holder dies, so a killed run leaves no stale
    lock behind.

    Raises:
        LockedError: When another process holds it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{folder} is being evaluated by another process") from None
        yield
    finally:
        os.close(handle)


def is_locked(folder: pathlib.Path) -> bool:
    """Whether another process holds the job's lock now."""
    if not folder.is_dir():
        return False
    try:
        with locked(folder):
            return False
    except LockedError:
        return True


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A finished eva session's metric, read the way the leaderboard reads it."""

    metric: float
    metric_key: str
    protocol_hash: str
    results: pathlib.Path


def read_outcome(output_root: pathlib.Path, task: leaderboard_tasks.Task) -> Outcome:
    """The task's metric from the results.json under `output_root`.

    Args:
        output_root: eva's OUTPUT_ROOT of the job.
        task: The leaderboard task the job is scored as (a label-efficiency variant's, as its
            task's).

    Raises:
        LeaderboardError: When there is no complete, readable results.json with the metric.
    """
    run = eva_run.read_run(output_root)
    result = eva_run.metric_result(run, task)
    return Outcome(
        metric=result.mean,
        metric_key=result.key,
        protocol_hash=protocol.protocol_hash(run.config),
        results=run.results_path,
    )


def completion(
    folder: pathlib.Path, fingerprint: str, task: leaderboard_tasks.Task
) -> tuple[str, str]:
    """Whether a job's folder holds a finished run of this plan, scored as `task`.

    Returns:
        ("complete", why), ("stale", why) when it holds results of another plan, or
        ("incomplete", why).
    """
    record = JobRecord.read(folder)
    if record is None:
        return "incomplete", "not run yet"
    if record.state != "done":
        return "incomplete", f"previous attempt: {record.state}"
    try:
        outcome = read_outcome(folder / "eva", task)
    except LeaderboardError as error:
        return "incomplete", f"results unreadable: {error}"
    if record.fingerprint != fingerprint:
        return "stale", "finished under another plan (config or variables changed)"
    if outcome.protocol_hash != record.protocol_hash:
        return "stale", "results.json's protocol hash differs from the recorded one"
    return "complete", f"{outcome.metric_key} = {outcome.metric:.4f}"


def check_model_folder(
    folder: pathlib.Path, model: dict[str, Any], force: bool, *, record: bool = True
) -> None:
    """Records which model a model folder belongs to; refuses a folder of another model.

    Args:
        folder: OUTPUT/<model id>.
        model: The model's description (`ModelSpec.to_dict`).
        force: Whether a folder of another model may be taken over.
        record: Whether to write the description (not in a dry run).

    Raises:
        ValueError: When the folder holds another model's results and `force` is not set.
    """
    path = folder / MODEL_FILE
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"{path}: unreadable ({error}); remove it or pass --force") from error
        if recorded != model and not force:
            raise ValueError(
                f"{folder} holds results of another model ({path}: {recorded}); choose another "
                "--output or --model-id, or pass --force to rerun it with this model"
            )
    elif folder.is_dir() and any(folder.iterdir()) and not force:
        raise ValueError(
            f"{folder} is not empty and was not written by coralbay evaluate; choose another "
            "--output or pass --force"
        )
    if record:
        folder.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_text(path, json.dumps(model, indent=2, sort_keys=True) + "\n")


def set_aside(folder: pathlib.Path) -> pathlib.Path | None:
    """Moves an earlier attempt's eva output and log to `attempts/<n>/`; nothing is deleted."""
    leftovers = [
        folder / name for name in ("eva", "embeddings", "eva.log") if (folder / name).exists()
    ]
    if not leftovers:
        return None
    attempts = folder / "attempts"
    number = 1 + max((int(p.name) for p in attempts.glob("*") if p.name.isdigit()), default=0)
    target = attempts / str(number)
    target.mkdir(parents=True)
    for path in leftovers:
        path.rename(target / path.name)
    return target
