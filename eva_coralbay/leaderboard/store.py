"""The leaderboard folder on disk: locked, atomic writes of submissions and their history.

Layout under the root:

    submissions/<model>/<task>.json                  the current entry of a model on a task
    submissions/<model>/<task>@<count>.json          a label-efficiency variant (`variants`)
    submissions/<model>/history/<task>/<NNNN>.json   entries it replaced, oldest first
    submissions/<model>/per_case/<sha256>.parquet    per-case scores, content-addressed
    tasks.yaml                                       the root's own tasks, if any (`task_file`)
    robustness/<model>.json                          robustness records (`robustness_board`)
    leaderboard.parquet, README.md, heatmap.png, heatmap.svg   written by `build`
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

from eva_coralbay._io import atomic_copy, atomic_write_bytes
from eva_coralbay.leaderboard import schema, tasks
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.record import Submission

SUBMISSIONS = "submissions"
HISTORY = "history"
PER_CASE = "per_case"


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What a write did."""

    path: pathlib.Path
    """The current entry."""

    replaced: pathlib.Path | None
    """Where the entry it replaced was kept, if it replaced one."""

    record: Submission
    """The entry as written: the model fields it left open filled from the model's entries."""


class Store:
    """A leaderboard folder and the tasks it knows."""

    def __init__(self, root: pathlib.Path, registry: tasks.Registry | None = None) -> None:
        """Points at a leaderboard root (it need not exist yet).

        Args:
            root: The leaderboard folder.
            registry: Its tasks; by default the built-in ones plus those of its tasks.yaml.

        Raises:
            LeaderboardError: When the root's tasks.yaml is invalid (naming the file and line).
        """
        self.root = root
        self.registry = tasks.Registry.for_root(root) if registry is None else registry
        """The tasks entries of this leaderboard may be on."""

    @property
    def submissions(self) -> pathlib.Path:
        """The folder of all submissions."""
        return self.root / SUBMISSIONS

    def entry_path(self, model_id: str, task_id: str) -> pathlib.Path:
        """Where the current entry of a model on a task lives."""
        return self.submissions / model_id / f"{task_id}.json"

    def history_dir(self, model_id: str, task_id: str) -> pathlib.Path:
        """Where replaced entries of a model on a task are kept."""
        return self.submissions / model_id / HISTORY / task_id

    def entry_paths(self) -> list[pathlib.Path]:
        """Every current entry, sorted by model then task."""
        return sorted(self.submissions.glob("*/*.json"))

    def history_paths(self) -> list[pathlib.Path]:
        """Every replaced entry, sorted."""
        return sorted(self.submissions.glob(f"*/{HISTORY}/*/*.json"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds an exclusive lock on the root for a read-modify-write.

        The lock is `flock` on the root folder itself, so no lock file is left behind; other
        processes that submit to the same root wait.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def model_records(self, model_id: str) -> list[Submission]:
        """The current entries of one model."""
        return [
            schema.read_record(path, self.registry)
            for path in sorted((self.submissions / model_id).glob("*.json"))
        ]

    def write(
        self,
        record: Submission,
        *,
        replace: bool,
        per_case: pathlib.Path | None = None,
    ) -> WriteResult:
        """Adds or replaces the entry of `record`'s model on its task, under the lock.

        Model fields left None in `record` are taken from the model's existing entries, and so
        is the display name when `record` has the default one (its model id); a value that
        contradicts them is refused (one model id is one model).

        Args:
            record: The new entry; validated here before anything is written.
            replace: Whether an existing entry may be replaced (it moves to the history).
            per_case: A per-case score file to store with the entry (content-addressed).

        Returns:
            Where the entry was written and where the one it replaced was kept.

        Raises:
            LeaderboardError: When the entry exists and `replace` is False, when it is invalid
                or contradicts the model's other entries. Nothing is written then.
        """
        model_id, task_id = record.model_id, record.task_id
        with self.locked():
            merged = _merged_model_fields(record, self.model_records(model_id))
            path = self.entry_path(model_id, task_id)
            content = merged.to_json()
            schema.check_record(content, f"new entry {path}", self.registry)
            if path.exists() and not replace:
                raise LeaderboardError(
                    f"{path}: an entry for model {model_id!r} on task {task_id!r} exists; pass "
                    "--replace to replace it (the old entry is kept in the history)"
                )
            if per_case is not None:
                target = path.parent / str(merged.per_case_file)
                if not target.exists():
                    atomic_copy(per_case, target)
            replaced = None
            if path.exists():
                replaced = next_history_path(self.history_dir(model_id, task_id))
                atomic_write_bytes(replaced, path.read_bytes())
            atomic_write_bytes(path, schema.dump_record(content))
        return WriteResult(path, replaced, merged)


def next_history_path(history: pathlib.Path) -> pathlib.Path:
    """Where the next replaced record goes in a history folder: `<NNNN>.json`, counting up."""
    number = 1 + max((int(p.stem) for p in history.glob("*.json") if p.stem.isdigit()), default=0)
    return history / f"{number:04d}.json"


def known_model_fields(records: Sequence[Submission]) -> dict[str, Any]:
    """The model fields that a model's entries state (the first non-null value of each)."""
    known: dict[str, Any] = {}
    for record in records:
        for field in schema.MODEL_FIELDS:
            value = getattr(record, field)
            if value is not None:
                known.setdefault(field, value)
    return known


def model_field_conflicts(records: Sequence[Submission]) -> list[str]:
    """Model fields on which a model's entries disagree (None agrees with anything)."""
    conflicts = []
    for field in schema.MODEL_FIELDS:
        values = []
        for record in records:
            value = getattr(record, field)
            if value is not None and value not in values:
                values.append(value)
        if len(values) > 1:
            conflicts.append(f"{field}: {' vs '.join(repr(_shown(value)) for value in values)}")
    return conflicts


def _shown(value: Any) -> Any:
    """A field's value as its file has it (a list, not the record's tuple), for messages."""
    return list(value) if isinstance(value, tuple) else value


def _merged_model_fields(record: Submission, existing: Sequence[Submission]) -> Submission:
    """`record` with the model fields it leaves open taken from the model's existing entries.

    Raises:
        LeaderboardError: When a field `record` states contradicts the existing entries.
    """
    known = known_model_fields(existing)
    filled: dict[str, Any] = {}
    conflicts = []
    for field, value in known.items():
        own = getattr(record, field)
        # The model id is the display name of a submit that names none: it yields.
        if own is None or (field == "display_name" and own == record.model_id):
            filled[field] = value
        elif own != value:
            conflicts.append(f"{field}: {_shown(own)!r} (existing entries: {_shown(value)!r})")
    if conflicts:
        raise LeaderboardError(
            f"model {record.model_id!r} already has entries with other model details:\n"
            + "\n".join(f"  - {conflict}" for conflict in conflicts)
            + "\na model id names one model; use a new id for different weights"
        )
    return record.replace(**filled) if filled else record
