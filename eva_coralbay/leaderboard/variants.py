"""Label-efficiency variants of a task: `btcv@5` is BTCV with 5 labelled training cases."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

from eva_coralbay.leaderboard.errors import LeaderboardError

SEPARATOR = "@"
"""Joins a task and its count of labels: `btcv@5` is BTCV's decoder trained on 5 cases,
`organmnist@5` the OrganMNIST probe trained on 5 samples of each class."""

FULL_LABELS = "all"
"""How tables and plots name the full-label point, the last of each curve."""

_COUNT = re.compile(r"[1-9][0-9]*")
"""A count of labels: a positive integer without leading zeros (one spelling per variant)."""


class _OnATask(Protocol):
    @property
    def task_id(self) -> str: ...


T = TypeVar("T", bound=_OnATask)


def variant_id(task_id: str, count: int | None) -> str:
    """The id of `task_id` trained on `count` labels; the task itself for None (every label)."""
    return task_id if count is None else f"{task_id}{SEPARATOR}{count}"


def split(task_id: str) -> tuple[str, int | None]:
    """`btcv@5` -> (`btcv`, 5); `btcv` -> (`btcv`, None).

    Raises:
        LeaderboardError: When the part after `@` is not a positive integer.
    """
    base, separator, count = task_id.partition(SEPARATOR)
    if not separator:
        return base, None
    if not _COUNT.fullmatch(count):
        raise LeaderboardError(
            f"invalid task variant {task_id!r}: the count after {SEPARATOR!r} must be a positive "
            "integer (btcv@5)"
        )
    return base, int(count)


def count_unit(task_type: str) -> str:
    """What a variant's count counts for a task type (segmentation: cases; probes: samples)."""
    return "training samples per class" if task_type == "classification" else "training cases"


def base_task(task_id: str) -> str:
    """The task a variant belongs to: `btcv` for `btcv@5` (and for `btcv`)."""
    return task_id.partition(SEPARATOR)[0]


def is_variant(task_id: str) -> bool:
    """Whether `task_id` names a label-efficiency variant rather than a task."""
    return SEPARATOR in task_id


def partition(records: Iterable[T]) -> tuple[list[T], list[T]]:
    """Splits records (anything with a `task_id`) into full-label ones and variants."""
    full: list[T] = []
    subsets: list[T] = []
    for record in records:
        (subsets if SEPARATOR in record.task_id else full).append(record)
    return full, subsets
