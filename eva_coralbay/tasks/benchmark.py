"""The record of one benchmark: what it is, where it comes from, how it is split and scored."""

from __future__ import annotations

import dataclasses
from typing import Literal

TaskType = Literal["segmentation", "classification"]

TASK_TYPES: tuple[TaskType, ...] = ("segmentation", "classification")
"""Task types in the order the leaderboard shows them."""


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark's facts, read by its adapter, its eva config and the leaderboard."""

    id: str
    """The task id of submissions, folder names and configs."""

    title: str
    """The full name (adapters, docs)."""

    display_name: str
    """The short name of the leaderboard's tables."""

    type: TaskType
    """Segmentation (scored with Dice) or classification (balanced accuracy)."""

    homepage: str
    """Where the benchmark is published."""

    citation: str
    """The reference for the benchmark."""

    license: str = ""
    """The data licence, as far as this project states it ("" where it reads no data yet)."""

    split_source: str = ""
    """Where the fixed train/val(/test) split comes from."""

    classes: tuple[str, ...] = ()
    """Canonical class names by label id (segmentation: background first); () where unknown."""

    native_classes: tuple[str, ...] = ()
    """Class names as the release ships them, by label id; () when they are the canonical ones."""

    num_classes: int | None = None
    """The number of classes where `classes` is not known (a task no adapter reads yet)."""

    expected_cases: tuple[tuple[str, int], ...] = ()
    """Labelled cases per split of the complete release; () where the release's own list says."""

    image_sources: tuple[str, ...] = ()
    """The image collections of the task's scans: a model pretrained on any of them is
    contaminated for this task."""

    eva_datasets: tuple[str, ...] = ()
    """Class names of eva's datasets for this task (`eva.vision.datasets.<name>`)."""

    adapter: str | None = None
    """This project's dataset class (`eva_coralbay.data.adapters.<name>`), if it has one."""

    config: str | None = None
    """The eva config under configs/, if one is shipped."""

    synthetic: bool = False
    """Whether the data is generated (the demo); tables mark such tasks."""

    def __post_init__(self) -> None:
        """Fails loudly on a malformed record."""
        if self.type not in TASK_TYPES:
            raise ValueError(f"benchmark {self.id!r}: unknown type {self.type!r}")
        if self.classes and self.num_classes not in (None, len(self.classes)):
            raise ValueError(
                f"benchmark {self.id!r}: num_classes {self.num_classes} but "
                f"{len(self.classes)} class names"
            )
        if self.native_classes and len(self.native_classes) != len(self.classes):
            raise ValueError(f"benchmark {self.id!r}: native and canonical class counts differ")

    @property
    def class_count(self) -> int | None:
        """The number of classes (segmentation: background included), or None if unknown."""
        return len(self.classes) if self.classes else self.num_classes

    @property
    def cases_per_split(self) -> dict[str, int]:
        """`expected_cases` as a dict."""
        return dict(self.expected_cases)
