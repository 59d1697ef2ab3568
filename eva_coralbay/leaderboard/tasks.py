"""The leaderboard's tasks: the catalogue's benchmarks with metrics, and how runs map to them.

The facts of each benchmark live in `eva_coralbay.tasks`; this module adds only what the
leaderboard needs on top (the metric and eva's key for it, dataset-class lookup, contamination).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from eva_coralbay.leaderboard import ids
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.metrics import Direction, Metric, get_metric
from eva_coralbay.tasks import BENCHMARKS, TASK_TYPES, Benchmark, TaskType

EVA_DATASETS_PACKAGE = "eva"
"""Dataset class paths under this package are matched against `Task.eva_datasets`."""

CORALBAY_DATASETS_PACKAGE = "eva_coralbay.data.adapters"
"""Dataset class paths under this package are matched against `Task.coralbay_datasets`."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One leaderboard task: a benchmark, its metric and where its images come from."""

    id: str
    """The id used in submissions, folder names and configs."""

    display_name: str
    """The name shown in tables."""

    type: TaskType
    """Segmentation (scored with Dice) or classification (balanced accuracy)."""

    metric: str
    """The id of the task's metric in `metrics.METRICS`."""

    eva_metric: str
    """The key eva logs the metric under, without the `val/` or `test/` stage prefix."""

    citation: str
    """The reference for the benchmark."""

    url: str
    """Where the benchmark is published."""

    image_sources: tuple[str, ...]
    """The image collections the task's scans come from; a model pretrained on any of them is
    contaminated for this task."""

    eva_datasets: tuple[str, ...] = ()
    """Class names of eva's datasets for this task (`eva.vision.datasets.<name>`)."""

    coralbay_datasets: tuple[str, ...] = ()
    """Class names of this project's adapters (`eva_coralbay.data.adapters.<name>`)."""

    synthetic: bool = False
    """Whether the data is generated (the demo); tables mark such tasks."""

    def __post_init__(self) -> None:
        """Fails loudly on a malformed registry entry (unknown metric, unsafe id)."""
        ids.check_slug(self.id, "task id")
        if self.type not in TASK_TYPES:
            raise LeaderboardError(f"task {self.id!r}: unknown type {self.type!r}")
        get_metric(self.metric)
        for source in self.image_sources:
            ids.check_slug(source, f"image source of task {self.id!r}")

    @property
    def metric_spec(self) -> Metric:
        """The task's metric."""
        return get_metric(self.metric)

    @property
    def direction(self) -> Direction:
        """Whether a higher or a lower value is better on this task."""
        return self.metric_spec.direction


def _task(benchmark: Benchmark) -> Task:
    """A benchmark of the catalogue as a leaderboard task: its metric and where runs land."""
    if benchmark.type == "segmentation":
        metric, eva_metric = "dice", "DiceScore"
    else:
        # eva's multiclass metrics have no balanced accuracy by name: MulticlassAccuracy with
        # its default average="macro" is the mean per-class recall, i.e. balanced accuracy.
        metric = "balanced_accuracy"
        binary = benchmark.class_count == 2
        eva_metric = "BinaryBalancedAccuracy" if binary else "MulticlassAccuracy"
    return Task(
        id=benchmark.id,
        display_name=benchmark.display_name,
        type=benchmark.type,
        metric=metric,
        eva_metric=eva_metric,
        citation=benchmark.citation,
        url=benchmark.homepage,
        image_sources=benchmark.image_sources,
        eva_datasets=benchmark.eva_datasets,
        coralbay_datasets=(benchmark.adapter,) if benchmark.adapter else (),
        synthetic=benchmark.synthetic,
    )


_TASK_LIST: tuple[Task, ...] = tuple(_task(benchmark) for benchmark in BENCHMARKS)

TASKS: dict[str, Task] = {task.id: task for task in _TASK_LIST}
"""Every registered task by id, in the order the leaderboard shows them."""

SOURCE_ALIASES: dict[str, tuple[str, ...]] = {
    "msd": (
        "lits",
        "msd_pancreas",
        "msd_lung",
        "msd_hepatic_vessel",
        "msd_spleen",
        "msd_colon",
    ),
    "luna16": ("lidc_idri",),
    "lidc": ("lidc_idri",),
    "kits19": ("kits",),
    "kits21": ("kits",),
    "amos": ("amos22",),
}
"""Pretraining dataset names that stand for several image collections, or for one under
another name. A task id also stands for its task's image collections."""


def _dataset_lookup() -> dict[tuple[str, str], str]:
    lookup: dict[tuple[str, str], str] = {}
    for task in _TASK_LIST:
        keys = [(EVA_DATASETS_PACKAGE, name) for name in task.eva_datasets]
        keys += [(CORALBAY_DATASETS_PACKAGE, name) for name in task.coralbay_datasets]
        for key in keys:
            if key in lookup:
                raise LeaderboardError(
                    f"dataset class {key} is registered for tasks {lookup[key]!r} and {task.id!r}"
                )
            lookup[key] = task.id
    return lookup


_DATASET_TO_TASK = _dataset_lookup()


def get_task(task_id: str) -> Task:
    """Returns the registered task with this id.

    Raises:
        LeaderboardError: When no such task is registered.
    """
    try:
        return TASKS[task_id]
    except (KeyError, TypeError):
        raise LeaderboardError(
            f"unknown task {task_id!r}; registered tasks: {', '.join(TASKS)}"
        ) from None


def task_for_dataset_class(class_path: str) -> str | None:
    """Returns the id of the task whose dataset `class_path` names, or None.

    eva's classes match under any of eva's import paths (`eva.vision.datasets.BTCV`,
    `eva.vision.data.datasets.segmentation.btcv.BTCV`, ...); this project's adapters match
    under `eva_coralbay.data.adapters`.
    """
    module, _, name = class_path.rpartition(".")
    if module == CORALBAY_DATASETS_PACKAGE or module.startswith(CORALBAY_DATASETS_PACKAGE + "."):
        return _DATASET_TO_TASK.get((CORALBAY_DATASETS_PACKAGE, name))
    if module.startswith(EVA_DATASETS_PACKAGE + "."):
        return _DATASET_TO_TASK.get((EVA_DATASETS_PACKAGE, name))
    return None


def image_sources(pretraining_datasets: Iterable[str]) -> frozenset[str]:
    """Expands pretraining dataset names into the image collections they contain.

    A name is an image collection itself, an alias in `SOURCE_ALIASES` or a task id (standing
    for that task's collections).
    """
    sources: set[str] = set()
    for name in pretraining_datasets:
        sources.add(name)
        sources.update(SOURCE_ALIASES.get(name, ()))
        if name in TASKS:
            sources.update(TASKS[name].image_sources)
    return frozenset(sources)


def is_contaminated(task: Task, pretraining_datasets: Iterable[str]) -> bool:
    """Whether a model pretrained on these datasets has seen images of `task`."""
    return not image_sources(pretraining_datasets).isdisjoint(task.image_sources)
