"""The leaderboard's tasks: the catalogue's benchmarks with metrics, and how runs map to them.

The facts of each benchmark live in `eva_coralbay.tasks`; this module adds only what the
leaderboard needs on top (the metric and eva's key for it, dataset-class lookup, contamination).
A `Registry` is the set of tasks one leaderboard knows: the built-in catalogue plus the tasks its
root declares in `tasks.yaml` (`task_file`). It is an immutable object that callers pass along,
so two leaderboards in one process never see each other's tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

from eva_coralbay.leaderboard import ids
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.metrics import Direction, Metric, get_metric
from eva_coralbay.tasks import BENCHMARKS, TASK_TYPES, Benchmark, TaskType

EVA_DATASETS_PACKAGE = "eva"
"""Dataset class paths under this package are matched against `Task.eva_datasets`."""

CORALBAY_DATASETS_PACKAGE = "eva_coralbay.data.adapters"
"""Dataset class paths under this package are matched against `Task.coralbay_datasets`."""

GENERIC_ADAPTERS = frozenset({"DecathlonFormat", "ScanTable"})
"""Adapters that read any dataset in a common layout: their class tells no task apart, so a run
of theirs is matched by its output folder (the config's `TASK_ID`) instead."""

METRIC_OF_TYPE: Mapping[TaskType, str] = {
    "segmentation": "dice",
    "classification": "balanced_accuracy",
}
"""The metric every task of a type is scored with (eva computes no other for the leaderboard)."""

__all__ = [
    "CORALBAY_DATASETS_PACKAGE",
    "EVA_DATASETS_PACKAGE",
    "GENERIC_ADAPTERS",
    "METRIC_OF_TYPE",
    "SOURCE_ALIASES",
    "TASK_TYPES",
    "Registry",
    "Task",
    "builtin_registry",
    "task_of",
]


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

    title: str = ""
    """The benchmark's full name; the display name where empty."""

    license: str = ""
    """The data licence as far as it is stated ("" where it is not)."""

    classes: tuple[str, ...] = ()
    """Class names by label id, where known (per-class tables list them in this order)."""

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


def task_of(benchmark: Benchmark) -> Task:
    """A benchmark of the catalogue (or of a root's tasks.yaml) as a leaderboard task."""
    metric = METRIC_OF_TYPE[benchmark.type]
    if benchmark.type == "segmentation":
        eva_metric = "DiceScore"
    else:
        # eva's multiclass metrics have no balanced accuracy by name: MulticlassAccuracy with
        # its default average="macro" is the mean per-class recall, i.e. balanced accuracy.
        binary = benchmark.class_count == 2
        eva_metric = "BinaryBalancedAccuracy" if binary else "MulticlassAccuracy"
    identifying = benchmark.adapter and benchmark.adapter not in GENERIC_ADAPTERS
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
        coralbay_datasets=(benchmark.adapter,) if identifying and benchmark.adapter else (),
        synthetic=benchmark.synthetic,
        title=benchmark.title,
        license=benchmark.license,
        classes=benchmark.classes,
    )


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


class Registry:
    """The tasks one leaderboard knows, in the order it shows them; immutable."""

    def __init__(self, benchmarks: Sequence[Benchmark], *, builtin: int | None = None) -> None:
        """Builds the registry of these benchmarks.

        Args:
            benchmarks: The benchmarks, in the order the leaderboard shows them.
            builtin: How many of the first benchmarks are the built-in catalogue's (all when
                None); the others are a root's own.

        Raises:
            LeaderboardError: For a repeated id or a dataset class registered for two tasks.
        """
        self._benchmarks: dict[str, Benchmark] = {}
        for benchmark in benchmarks:
            if benchmark.id in self._benchmarks:
                raise LeaderboardError(f"task {benchmark.id!r} is registered twice")
            self._benchmarks[benchmark.id] = benchmark
        self._tasks = {benchmark.id: task_of(benchmark) for benchmark in benchmarks}
        self._position = {task_id: position for position, task_id in enumerate(self._tasks)}
        self._builtin = len(benchmarks) if builtin is None else builtin
        self._by_dataset: dict[tuple[str, str], str] = {}
        for task in self._tasks.values():
            keys = [(EVA_DATASETS_PACKAGE, name) for name in task.eva_datasets]
            keys += [(CORALBAY_DATASETS_PACKAGE, name) for name in task.coralbay_datasets]
            for key in keys:
                if key in self._by_dataset:
                    raise LeaderboardError(
                        f"dataset class {'.'.join(key)} is registered for tasks "
                        f"{self._by_dataset[key]!r} and {task.id!r}"
                    )
                self._by_dataset[key] = task.id

    @classmethod
    def for_root(cls, root: pathlib.Path) -> Registry:
        """The built-in tasks plus those `root`'s `tasks.yaml` declares (when it has one).

        Raises:
            LeaderboardError: When tasks.yaml is malformed or declares a built-in id, naming
                the file and line.
        """
        from eva_coralbay.leaderboard import task_file

        builtin = builtin_registry()
        declared = task_file.read(root / task_file.FILENAME, builtin)
        if not declared:
            return builtin
        return cls([*builtin.benchmarks(), *declared], builtin=len(builtin))

    def __contains__(self, task_id: object) -> bool:
        """Whether a task with this id is registered."""
        return task_id in self._tasks

    def __iter__(self) -> Iterator[Task]:
        """The tasks in leaderboard order."""
        return iter(self._tasks.values())

    def __len__(self) -> int:
        """How many tasks are registered."""
        return len(self._tasks)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every task id, in leaderboard order."""
        return tuple(self._tasks)

    def get(self, task_id: str) -> Task:
        """Returns the registered task with this id.

        Raises:
            LeaderboardError: When no such task is registered.
        """
        try:
            return self._tasks[task_id]
        except (KeyError, TypeError):
            raise LeaderboardError(
                f"unknown task {task_id!r}; registered tasks: {', '.join(self._tasks)}"
            ) from None

    def benchmark(self, task_id: str) -> Benchmark:
        """The catalogue (or tasks.yaml) record of a task.

        Raises:
            LeaderboardError: When no such task is registered.
        """
        self.get(task_id)
        return self._benchmarks[task_id]

    def benchmarks(self) -> tuple[Benchmark, ...]:
        """Every task's record, in leaderboard order."""
        return tuple(self._benchmarks.values())

    def declared(self) -> tuple[Task, ...]:
        """The tasks the root declares itself (its tasks.yaml), not the built-in ones."""
        return tuple(self._tasks.values())[self._builtin :]

    def position(self, task_id: str) -> int:
        """The task's place in leaderboard order (unknown ids after every known one)."""
        return self._position.get(task_id, len(self._position))

    def for_dataset_class(self, class_path: str) -> str | None:
        """Returns the id of the task whose dataset `class_path` names, or None.

        eva's classes match under any of eva's import paths (`eva.vision.datasets.BTCV`,
        `eva.vision.data.datasets.segmentation.btcv.BTCV`, ...); this project's adapters match
        under `eva_coralbay.data.adapters`.
        """
        module, _, name = class_path.rpartition(".")
        if module == CORALBAY_DATASETS_PACKAGE or module.startswith(
            CORALBAY_DATASETS_PACKAGE + "."
        ):
            return self._by_dataset.get((CORALBAY_DATASETS_PACKAGE, name))
        if module.startswith(EVA_DATASETS_PACKAGE + "."):
            return self._by_dataset.get((EVA_DATASETS_PACKAGE, name))
        return None

    def image_sources(self, pretraining_datasets: Iterable[str]) -> frozenset[str]:
        """Expands pretraining dataset names into the image collections they contain.

        A name is an image collection itself, an alias in `SOURCE_ALIASES` or a task id
        (standing for that task's collections).
        """
        sources: set[str] = set()
        for name in pretraining_datasets:
            sources.add(name)
            sources.update(SOURCE_ALIASES.get(name, ()))
            if name in self._tasks:
                sources.update(self._tasks[name].image_sources)
        return frozenset(sources)

    def is_contaminated(self, task: Task, pretraining_datasets: Iterable[str]) -> bool:
        """Whether a model pretrained on these datasets has seen images of `task`."""
        return not self.image_sources(pretraining_datasets).isdisjoint(task.image_sources)


@functools.cache
def builtin_registry() -> Registry:
    """The built-in tasks of the catalogue (`eva_coralbay.tasks`), without any root's own."""
    return Registry(BENCHMARKS)
