"""The explicit task registry: every task a submission may name, and how runs map onto it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from eva_coralbay.leaderboard import ids
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.metrics import Direction, Metric, get_metric

TaskType = Literal["segmentation", "classification"]

TASK_TYPES: tuple[TaskType, ...] = ("segmentation", "classification")
"""Task types in the order the leaderboard shows them."""

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


_MSD_CITATION = (
    "Antonelli et al., The Medical Segmentation Decathlon, Nature Communications 13, 4128 (2022)"
)
_MSD_URL = "http://medicaldecathlon.com/"
_MEDMNIST_CITATION = (
    "Yang et al., MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D biomedical "
    "image classification, Scientific Data 10, 41 (2023)"
)


def _segmentation(
    task_id: str,
    display_name: str,
    citation: str,
    url: str,
    image_sources: tuple[str, ...],
    eva_datasets: tuple[str, ...] = (),
    coralbay_datasets: tuple[str, ...] = (),
    synthetic: bool = False,
) -> Task:
    return Task(
        id=task_id,
        display_name=display_name,
        type="segmentation",
        metric="dice",
        eva_metric="DiceScore",
        citation=citation,
        url=url,
        image_sources=image_sources,
        eva_datasets=eva_datasets,
        coralbay_datasets=coralbay_datasets,
        synthetic=synthetic,
    )


def _classification(
    task_id: str,
    display_name: str,
    n_classes: int,
    citation: str,
    url: str,
    image_sources: tuple[str, ...],
    eva_datasets: tuple[str, ...] = (),
    coralbay_datasets: tuple[str, ...] = (),
    synthetic: bool = False,
) -> Task:
    return Task(
        id=task_id,
        display_name=display_name,
        type="classification",
        metric="balanced_accuracy",
        # eva's multiclass metrics have no balanced accuracy by name: MulticlassAccuracy with
        # its default average="macro" is the mean per-class recall, i.e. balanced accuracy.
        eva_metric="BinaryBalancedAccuracy" if n_classes == 2 else "MulticlassAccuracy",
        citation=citation,
        url=url,
        image_sources=image_sources,
        eva_datasets=eva_datasets,
        coralbay_datasets=coralbay_datasets,
        synthetic=synthetic,
    )


_TASK_LIST: tuple[Task, ...] = (
    _segmentation(
        "btcv",
        "BTCV",
        "Landman et al., MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault challenge",
        "https://www.synapse.org/#!Synapse:syn3193805",
        ("btcv",),
        eva_datasets=("BTCV",),
        coralbay_datasets=("BTCV",),
    ),
    _segmentation(
        "lits17",
        "LiTS17",
        "Bilic et al., The Liver Tumor Segmentation Benchmark (LiTS), Medical Image Analysis "
        "84, 102680 (2023)",
        "https://competitions.codalab.org/competitions/17094",
        ("lits",),
        eva_datasets=("LiTS17",),
        coralbay_datasets=("LiTS17",),
    ),
    _segmentation(
        "msd_task7_pancreas",
        "MSD Pancreas",
        _MSD_CITATION,
        _MSD_URL,
        ("msd_pancreas",),
        eva_datasets=("MSDTask7Pancreas",),
        coralbay_datasets=("MSDPancreas",),
    ),
    _segmentation(
        "totalsegmentator_v2",
        "TotalSegmentator v2",
        "Wasserthal et al., TotalSegmentator: robust segmentation of 104 anatomic structures "
        "in CT images, Radiology: Artificial Intelligence 5, e230024 (2023)",
        "https://zenodo.org/records/10047292",
        ("totalsegmentator",),
        coralbay_datasets=("TotalSegmentatorV2",),
    ),
    _segmentation(
        "amos22_ct",
        "AMOS22 (CT)",
        "Ji et al., AMOS: a large-scale abdominal multi-organ benchmark for versatile medical "
        "image segmentation, NeurIPS Datasets and Benchmarks (2022)",
        "https://amos22.grand-challenge.org/",
        ("amos22",),
        coralbay_datasets=("AMOS22CT",),
    ),
    _segmentation(
        "kits23",
        "KiTS23",
        "Heller et al., The KiTS21 challenge, arXiv:2307.01984 (2023); KiTS23 challenge",
        "https://kits-challenge.org/kits23/",
        ("kits",),
        eva_datasets=("KiTS23",),
        coralbay_datasets=("KiTS23",),
    ),
    _segmentation(
        "word",
        "WORD",
        "Luo et al., WORD: a large scale dataset, benchmark and clinical applicable study for "
        "abdominal organ segmentation from CT image, Medical Image Analysis 82, 102642 (2022)",
        "https://github.com/HiLab-git/WORD",
        ("word",),
        eva_datasets=("WORD",),
        coralbay_datasets=("WORD",),
    ),
    _segmentation(
        "flare22",
        "FLARE22",
        "Ma et al., Unleashing the strengths of unlabelled data in deep learning-assisted "
        "pan-cancer abdominal organ quantification: the FLARE22 challenge, Lancet Digital "
        "Health 6, e815 (2024)",
        "https://flare22.grand-challenge.org/",
        ("flare22",),
        eva_datasets=("FLARE22",),
        coralbay_datasets=("FLARE22",),
    ),
    _segmentation(
        "chaos",
        "CHAOS (CT)",
        "Kavur et al., CHAOS challenge - combined (CT-MR) healthy abdominal organ "
        "segmentation, Medical Image Analysis 69, 101950 (2021)",
        "https://chaos.grand-challenge.org/",
        ("chaos",),
    ),
    _segmentation(
        "msd_task3_liver",
        "MSD Liver",
        _MSD_CITATION,
        _MSD_URL,
        # MSD Task03 is the LiTS collection.
        ("lits",),
        coralbay_datasets=("MSDLiver",),
    ),
    _segmentation(
        "msd_task6_lung",
        "MSD Lung",
        _MSD_CITATION,
        _MSD_URL,
        ("msd_lung",),
        coralbay_datasets=("MSDLung",),
    ),
    _segmentation(
        "msd_task8_hepatic_vessel",
        "MSD Hepatic Vessel",
        _MSD_CITATION,
        _MSD_URL,
        ("msd_hepatic_vessel",),
        coralbay_datasets=("MSDHepaticVessel",),
    ),
    _segmentation(
        "msd_task9_spleen",
        "MSD Spleen",
        _MSD_CITATION,
        _MSD_URL,
        ("msd_spleen",),
        coralbay_datasets=("MSDSpleen",),
    ),
    _segmentation(
        "msd_task10_colon",
        "MSD Colon",
        _MSD_CITATION,
        _MSD_URL,
        ("msd_colon",),
        coralbay_datasets=("MSDColon",),
    ),
    _classification(
        "organmnist",
        "OrganMNIST3D",
        11,
        _MEDMNIST_CITATION,
        "https://medmnist.com/",
        # OrganMNIST3D is cut from the LiTS scans.
        ("lits",),
        eva_datasets=("OrganMNIST3D",),
        coralbay_datasets=("OrganMNIST3D",),
    ),
    _classification(
        "nodulemnist",
        "NoduleMNIST3D",
        2,
        _MEDMNIST_CITATION,
        "https://medmnist.com/",
        # NoduleMNIST3D is cut from LIDC-IDRI (as is LUNA16).
        ("lidc_idri",),
        eva_datasets=("NoduleMNIST3D",),
        coralbay_datasets=("NoduleMNIST3D",),
    ),
    _classification(
        "totalsegmentator_v2_organs",
        "TotalSegmentator v2 organs",
        # The organs of configs/radiology/offline/classification/organ_patches.yaml.
        10,
        "Organ patches (64^3 voxels of the model's grid) around ten organs of TotalSegmentator "
        "v2; Wasserthal et al., Radiology: Artificial Intelligence 5, e230024 (2023)",
        "https://zenodo.org/records/10047292",
        ("totalsegmentator",),
        # No dataset class: OrganPatches serves any source; the task comes from the config's
        # output folder (logs/<model>/totalsegmentator_v2_organs).
    ),
    _classification(
        "cc-ccii",
        "CC-CCII",
        3,
        "Zhang et al., Clinically applicable AI system for accurate diagnosis, quantitative "
        "measurements, and prognosis of COVID-19 pneumonia using computed tomography, Cell "
        "181, 1423 (2020)",
        "http://ncov-ai.big.ac.cn/download",
        ("cc_ccii",),
        eva_datasets=("CC_CCII",),
    ),
    _classification(
        "luna25",
        "LUNA25",
        2,
        "LUNA25: lung nodule malignancy risk estimation challenge (2025), scans from the "
        "National Lung Screening Trial",
        "https://luna25.grand-challenge.org/",
        ("nlst",),
        eva_datasets=("LUNA25",),
    ),
    _segmentation(
        "demo_phantom_segmentation",
        "Phantom organs (synthetic)",
        "Synthetic torso phantoms generated by `coralbay demo`",
        "https://github.com/kaiko-ai/eva-coralbay",
        ("demo_phantom",),
        synthetic=True,
    ),
    _classification(
        "demo_phantom_organs",
        "Phantom organ patches (synthetic)",
        3,
        "Organ patches cut from the synthetic torso phantoms of `coralbay demo`",
        "https://github.com/kaiko-ai/eva-coralbay",
        ("demo_phantom",),
        synthetic=True,
    ),
)

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
