"""The contract every benchmark adapter shares: layout, splits, class map, licence, validation."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.datasets.vision import VisionDataset
from monai.data.meta_tensor import MetaTensor
from torchvision import tv_tensors
from typing_extensions import override

from eva_coralbay import tasks
from eva_coralbay.data import cache as cache_store
from eva_coralbay.data import profile as profiles
from eva_coralbay.data import readers
from eva_coralbay.data.adapters import download, validation
from eva_coralbay.data.adapters.validation import LabelPart, Problem
from eva_coralbay.tasks import vocabulary

ProfileLike = str | profiles.PreprocessingProfile | Mapping[str, Any] | None
"""A model name (e.g. "radiology/coralbay"), a profile, its dict form, or None for raw volumes."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One scan of a benchmark with its label files, as laid out on disk."""

    case_id: str
    split: str
    image: Path
    labels: tuple[LabelPart, ...]

    def source_files(self) -> list[Path]:
        """Every file the standardised arrays are computed from, image first.

        A folder (a DICOM series, per-slice masks) stands for the files in it, so that a cache
        keyed on these files notices a changed slice.
        """
        files: list[Path] = []
        for path in (self.image, *(part.path for part in self.labels)):
            files += (
                sorted(item for item in path.iterdir() if item.is_file())
                if path.is_dir()
                else [path]
            )
        return files


@dataclasses.dataclass(frozen=True)
class StandardCase:
    """A case after the profile: `[X, Y, Z]` arrays on the profile's grid and their affine."""

    case_id: str
    split: str
    image: npt.NDArray[np.float32]
    label: npt.NDArray[np.integer]
    affine: npt.NDArray[np.float64]


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded numbers numerically ("case_2" before "case_10")."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def list_volumes(folder: Path, pattern: str = "*.nii.gz") -> list[Path]:
    """Files in `folder` matching `pattern`, without macOS "._" resource forks, naturally sorted.

    The Medical Segmentation Decathlon archives, for one, ship a "._name.nii.gz" next to every
    volume; they are not NIfTI files.
    """
    if not folder.is_dir():
        return []
    found = [path for path in folder.glob(pattern) if not path.name.startswith(".")]
    return sorted(found, key=lambda path: natural_key(path.name))


def strip_suffixes(name: str) -> str:
    """A file name without its volume suffix (.nii.gz, .nii, .mha, .nrrd)."""
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class SegmentationAdapter(VisionDataset[eva_tv_tensors.Volume, tv_tensors.Mask], abc.ABC):
    """A 3D CT segmentation benchmark in its native layout, standardised by a model's profile.

    Each sample is `(volume, mask, metadata)`: an eva `Volume` of shape `[1, X, Y, Z]` (float32,
    with its voxel-to-world affine) and a `Mask` of the same shape holding the benchmark's own
    label ids, whose names in the canonical vocabulary are `classes`. With a profile (the
    default, CoralBay's), the arrays are on the profile's grid: reoriented, resampled and
    intensity-scaled; with `profile=None` they are as stored. Standardised arrays come from the
    `coralbay preprocess` cache when it holds a fresh copy of the case, else from the source.
    """

    task_id: ClassVar[str]
    """The leaderboard task id."""

    title: ClassVar[str]
    """Human-readable name."""

    homepage: ClassVar[str]
    """Where the benchmark is described and distributed."""

    license: ClassVar[str]
    """The data licence."""

    split_source: ClassVar[str]
    """Where the fixed train/val(/test) split comes from."""

    native_classes: ClassVar[tuple[str, ...]]
    """Class names as the benchmark ships them, indexed by label id (0 = background)."""

    canonical_classes: ClassVar[tuple[str, ...]]
    """The canonical vocabulary name of each label id (same order as `native_classes`)."""

    split_names: ClassVar[tuple[str, ...]] = ("train", "val")
    """The splits this benchmark defines."""

    expected_cases: ClassVar[Mapping[str, int]]
    """Number of labelled cases per split in the complete dataset."""

    resources: ClassVar[tuple[download.Resource, ...]] = ()
    """Public archives `prepare_data` may download (checksum-verified); empty when manual."""

    manual_download: ClassVar[str] = ""
    """The exact steps to obtain the data by hand."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Takes a benchmark adapter's facts from its record in the task catalogue.

        Title, homepage, licence, split source, class names and expected case counts live once,
        in `eva_coralbay.tasks`; an adapter whose `task_id` has a record there reads them from
        it (a generic adapter such as `DecathlonFormat` states its own).
        """
        super().__init_subclass__(**kwargs)
        benchmark = tasks.CATALOGUE.get(cls.__dict__.get("task_id", ""))
        if benchmark is None:
            return
        if benchmark.adapter != cls.__name__:
            raise TypeError(
                f"{cls.__name__}: the catalogue names {benchmark.adapter!r} as the adapter of "
                f"task {benchmark.id!r}"
            )
        cls.title = benchmark.title
        cls.homepage = benchmark.homepage
        cls.license = benchmark.license
        cls.split_source = benchmark.split_source
        cls.canonical_classes = benchmark.classes
        cls.native_classes = benchmark.native_classes or benchmark.classes
        cls.expected_cases = benchmark.cases_per_split

    def __init__(
        self,
        root: str,
        split: str | None = None,
        transforms: Callable | None = None,
        profile: ProfileLike = "radiology/coralbay",
        cache: str | None = None,
        use_cache: bool = True,
        download: bool = False,
        allow_incomplete: bool = False,
        train_cases: int | str | None = None,
    ) -> None:
        """Initializes the adapter.

        Args:
            root: The folder holding the benchmark as distributed (see `layout`).
            split: One of `split_names`, or None for every split.
            transforms: eva / torchvision v2 transforms applied to `(volume, mask)`.
            profile: The model's preprocessing profile: a registry name such as
                "radiology/coralbay", a `PreprocessingProfile` or its dict form; None returns
                the volumes as stored (channel-first, native orientation and intensities).
            cache: The `coralbay preprocess` cache folder; None means `$CORALBAY_CACHE` or
                `~/.cache/coralbay`.
            use_cache: Whether to read standardised volumes from the cache when it holds a
                fresh copy of a case.
            download: Whether `prepare_data` downloads the data when it is missing and a
                checksummed public archive exists.
            allow_incomplete: Accept a dataset with fewer cases than the complete benchmark (a
                subset or a synthetic fixture): missing cases are skipped, not reported.
            train_cases: Train on this many labelled cases only (the label-efficiency track):
                the first of a fixed order of the training case ids (`nested_subset`), so the
                5-case set holds the 1-case set and every model gets the same cases. None or
                "all": every training case. The validation split is never cut.
        """
        super().__init__(transforms=transforms)
        if split is not None and split not in self.split_names:
            raise ValueError(
                f"{type(self).__name__}: unknown split {split!r}; use one of {self.split_names} "
                "or None"
            )
        self._root = Path(root)
        self._split = split
        self._profile = None if profile is None else profiles.resolve_profile(profile)
        self._cache_root = Path(cache) if cache else cache_store.default_cache_dir()
        self._use_cache = use_cache
        self._download = download
        self._allow_incomplete = allow_incomplete
        self._train_cases = parse_train_cases(train_cases)
        self._cases: list[Case] = []
        self._catalogue_size: dict[str, int] = {}
        self._cache: cache_store.CacheReader | None = None

    # ----------------------------------------------------------------------------------------
    # What each benchmark module provides.

    @abc.abstractmethod
    def catalogue(self) -> list[Case]:
        """Every labelled case of the benchmark, all splits, with the paths it should have.

        Cases a fixed split names are listed even when their files are missing, so that
        `validate` reports them; other cases are the ones found on disk.
        """

    def layout(self) -> str:
        """A one-line description of the native layout under `root`."""
        return ""

    def check_metadata(self) -> list[Problem]:
        """Checks the benchmark's own metadata files (dataset.json, meta.csv); none by default."""
        return []

    # ----------------------------------------------------------------------------------------
    # eva's dataset hooks.

    @property
    @override
    def classes(self) -> list[str]:
        return list(self.canonical_classes)

    @property
    @override
    def class_to_idx(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.canonical_classes)}

    @property
    def root(self) -> Path:
        """The benchmark folder."""
        return self._root

    @property
    def split(self) -> str | None:
        """The selected split (None: all)."""
        return self._split

    @property
    def profile(self) -> profiles.PreprocessingProfile | None:
        """The preprocessing profile applied to every case (None: raw volumes)."""
        return self._profile

    @property
    def cases(self) -> list[Case]:
        """The cases of the selected split, in order (after `configure`)."""
        return list(self._cases)

    @override
    def prepare_data(self) -> None:
        if self._root_has_data():
            return
        if self._download and self.resources:
            for resource in self.resources:
                download.fetch(resource, self._root)
            return
        print(self.obtain_instructions(), file=sys.stderr)

    @override
    def configure(self) -> None:
        catalogue = self.catalogue()
        self._catalogue_size = {name: 0 for name in self.split_names}
        for case in catalogue:
            self._catalogue_size[case.split] = self._catalogue_size.get(case.split, 0) + 1
        cases = [case for case in catalogue if self._split in (None, case.split)]
        if self._allow_incomplete:
            cases = [case for case in cases if case.image.exists()]
        if self._train_cases is not None:
            cases = self._cut_training_cases(cases)
        self._cases = cases
        self._cache = None
        if self._use_cache and self._profile is not None:
            self._cache = cache_store.CacheReader.open(
                self._cache_root, self.task_id, self._profile, type(self)
            )

    @override
    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise validation.DatasetValidationError(
                f"{type(self).__name__} at {self._root}", problems
            )

    def problems(self) -> list[Problem]:
        """Every problem with the selected cases, their files and the benchmark's metadata.

        Cases the cache holds fresh copies of were checked when they were cached and are
        skipped.
        """
        problems = [*self.check_metadata(), *self._completeness_problems()]
        unchecked = [case for case in self._cases if not self._cached_fresh(case)]
        problems += validation.check_cases(
            [(case.image, case.labels) for case in unchecked],
            num_classes=len(self.native_classes),
            geometry_fallback=_geometry_from_reader,
        )
        return problems

    @override
    def filename(self, index: int) -> str:
        image = self._cases[index].image
        try:
            return str(image.relative_to(self._root))
        except ValueError:
            return str(image)

    @override
    def __len__(self) -> int:
        return len(self._cases)

    @override
    def __getitem__(
        self, index: int
    ) -> tuple[eva_tv_tensors.Volume, tv_tensors.Mask, dict[str, Any]]:
        volume, mask = self._load_pair(index)
        volume, mask = self._apply_transforms(volume, mask)
        return volume, mask, self.load_metadata(index)

    @override
    def load_data(self, index: int) -> eva_tv_tensors.Volume:
        return self._load_pair(index)[0]

    @override
    def load_target(self, index: int) -> tv_tensors.Mask:
        return self._load_pair(index)[1]

    @override
    def load_metadata(self, index: int) -> dict[str, Any]:
        case = self._cases[index]
        return {"case_id": case.case_id, "split": case.split}

    # ----------------------------------------------------------------------------------------
    # Standardised arrays (shared with the cache, organ patches and benchmarks).

    def load_standard(self, index: int) -> StandardCase:
        """The case's `[X, Y, Z]` image and label after the profile, from the cache if fresh."""
        case = self._cases[index]
        if self._cache is not None:
            cached = self._cache.load(case.case_id, case.source_files())
            if cached is not None:
                return StandardCase(case.case_id, case.split, *cached)
        return self.standardise(case)

    def standardise(self, case: Case) -> StandardCase:
        """Reads a case from its source files and applies the profile (never the cache)."""
        image = readers.read_scan(case.image)
        label = self.read_label(case, image)
        if self._profile is not None:
            image, standard_label = self._profile.apply(image, label)
            assert standard_label is not None
            label = standard_label
        label_array = label.detach().cpu().numpy()[0]
        return StandardCase(
            case_id=case.case_id,
            split=case.split,
            image=np.ascontiguousarray(image.detach().cpu().numpy()[0], dtype=np.float32),
            label=np.ascontiguousarray(label_array.astype(_label_dtype(len(self.native_classes)))),
            affine=np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64),  # type: ignore[union-attr]
        )

    def read_label(self, case: Case, image: Any) -> Any:
        """Reads a case's label files as one `[1, X, Y, Z]` int64 label map on the image grid.

        A single label map is read as is; per-class binary masks are merged, the later class
        winning where masks overlap.
        """
        if len(case.labels) == 1 and case.labels[0].class_id is None:
            return readers.read_label(case.labels[0].path, reference=image)
        if not case.labels:
            raise ValueError(f"{case.image}: case {case.case_id} has no label files")
        first = readers.read_label(case.labels[0].path, reference=image)
        merged = np.zeros(tuple(first.shape), dtype=np.int64)

        def mask_of(part: LabelPart) -> npt.NDArray[np.bool_]:
            # Plain arrays: MetaTensor's per-operation bookkeeping costs more than the merge.
            return readers.read_label(part.path, reference=image).as_tensor().numpy() > 0

        workers = min(4, os.cpu_count() or 1)
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:
            # Decompression releases the GIL, so the per-class files are read concurrently, a
            # few at a time to bound the memory held by whole-volume masks.
            for start in range(0, len(case.labels), workers):
                parts = case.labels[start : start + workers]
                for part, mask in zip(parts, pool.map(mask_of, parts), strict=True):
                    merged[mask] = int(part.class_id or 0)
        meta = {key: value for key, value in first.meta.items() if key != "affine"}
        return MetaTensor(torch.from_numpy(merged), affine=first.affine, meta=meta)

    # ----------------------------------------------------------------------------------------
    # Descriptions.

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The adapter's documented facts (for docs/tasks.md and the leaderboard)."""
        return {
            "task_id": cls.task_id,
            "title": cls.title,
            "homepage": cls.homepage,
            "license": cls.license,
            "split_source": cls.split_source,
            "classes": list(cls.canonical_classes),
            "native_classes": list(cls.native_classes),
            "expected_cases": dict(cls.expected_cases),
        }

    def obtain_instructions(self) -> str:
        """How to obtain the data: the download command or the manual steps."""
        lines = [f"{self.title} was not found at {self._root}.", f"Licence: {self.license}."]
        if self.resources:
            lines.append(
                f"Set download=True to fetch it ({', '.join(r.url for r in self.resources)}, "
                "checksum-verified), or:"
            )
        lines.append(self.manual_download.strip())
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------
    # Internals.

    def _root_has_data(self) -> bool:
        return self._root.is_dir() and any(self._root.iterdir())

    def _cut_training_cases(self, cases: list[Case]) -> list[Case]:
        training = [case.case_id for case in cases if case.split == "train"]
        if not training:
            return cases
        assert self._train_cases is not None
        if self._train_cases > len(training):
            raise ValueError(
                f"{type(self).__name__} at {self._root}: train_cases={self._train_cases}, but the "
                f"training split has {len(training)} cases"
            )
        kept = set(nested_subset(training, self._train_cases))
        return [case for case in cases if case.split != "train" or case.case_id in kept]

    def _completeness_problems(self) -> list[Problem]:
        if self._allow_incomplete:
            return []
        problems = []
        for split_name, expected in self.expected_cases.items():
            if self._split not in (None, split_name):
                continue
            found = self._catalogue_size.get(split_name, 0)
            if found < expected:
                problems.append(
                    Problem(
                        str(self._root),
                        f"split {split_name!r} has {found} of the {expected} cases of the complete "
                        f"benchmark ({self.split_source}); pass allow_incomplete=True to use a "
                        "subset",
                    )
                )
        return problems

    def _cached_fresh(self, case: Case) -> bool:
        return self._cache is not None and self._cache.is_fresh(case.case_id, case.source_files())

    def _load_pair(self, index: int) -> tuple[eva_tv_tensors.Volume, tv_tensors.Mask]:
        standard = self.load_standard(index)
        # Copies memory-mapped cache arrays into memory: tensors must be writable.
        image = np.require(standard.image, dtype=np.float32, requirements=["W", "C"])
        volume = eva_tv_tensors.Volume(
            torch.from_numpy(image)[None],
            affine=torch.from_numpy(np.array(standard.affine, dtype=np.float64)),
            metadata={"case_id": standard.case_id},
        )
        mask = tv_tensors.Mask(torch.from_numpy(np.asarray(standard.label, dtype=np.int64))[None])
        return volume, mask


SUBSET_KEY = "coralbay-label-efficiency-v1"
"""Mixed into the case-id hash that orders training cases for `nested_subset`; changing it
changes every label-efficiency subset, so it is versioned."""


def parse_train_cases(value: int | str | None) -> int | None:
    """`train_cases` as a positive count, or None for every case ("all").

    Raises:
        ValueError: For anything but a positive integer or "all".
    """
    return parse_label_count(value, "train_cases")


def parse_label_count(value: int | str | None, setting: str) -> int | None:
    """A label-efficiency setting as a positive count, or None for every label ("all").

    Args:
        value: The setting as configured: a count, "all" or None.
        setting: Its name, for the error message (`train_cases`, `train_samples_per_class`).

    Raises:
        ValueError: For anything but a positive integer or "all".
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{setting} must be a positive integer or 'all', got {value!r}") from None
    if count < 1 or str(count) != str(value).strip():
        raise ValueError(f"{setting} must be a positive integer or 'all', got {value!r}")
    return count


def nested_subset(case_ids: Sequence[str], count: int) -> list[str]:
    """The first `count` case ids in a fixed order: nested in `count`, the same for every model.

    The order is by a SHA-256 of each id (with `SUBSET_KEY`), so it depends on the ids alone,
    not on file listing order or the machine.
    """
    ordered = sorted(
        case_ids, key=lambda case_id: hashlib.sha256(f"{SUBSET_KEY}:{case_id}".encode()).digest()
    )
    return ordered[:count]


def nested_subset_per_class(
    sample_ids: Sequence[str], labels: Sequence[int], count: int
) -> list[str]:
    """The first `count` sample ids of every class, each class in `nested_subset`'s order.

    Nested in `count` and the same for every model, like `nested_subset`: it depends on the
    ids and their labels alone. The ids come back in their given order.

    Args:
        sample_ids: The training samples' ids, unique.
        labels: Each sample's class.
        count: Samples to keep per class.

    Raises:
        ValueError: When a class has fewer than `count` samples (the message names the smallest).
    """
    by_class: dict[int, list[str]] = {}
    for sample_id, label in zip(sample_ids, labels, strict=True):
        by_class.setdefault(int(label), []).append(sample_id)
    short = {label: len(ids) for label, ids in by_class.items() if len(ids) < count}
    if short:
        label = min(short, key=lambda item: (short[item], item))
        raise ValueError(
            f"{count} samples per class requested, but class {label} has {short[label]} "
            f"training samples ({len(short)} of {len(by_class)} classes have fewer than {count})"
        )
    kept = {sample_id for ids in by_class.values() for sample_id in nested_subset(ids, count)}
    return [sample_id for sample_id in sample_ids if sample_id in kept]


def _geometry_from_reader(path: Path) -> validation.Geometry:
    """The geometry of a scan that is not NIfTI (DICOM, MHA, NRRD), through the data readers."""
    scan = readers.read_scan(path)
    affine = np.asarray(scan.affine.detach().cpu().numpy(), dtype=np.float64)  # type: ignore[union-attr]
    return validation.Geometry(tuple(int(n) for n in scan.shape[1:]), affine)


def _label_dtype(num_classes: int) -> type[np.integer]:
    return np.uint8 if num_classes <= 256 else np.int16


def check_class_map(cls: type[SegmentationAdapter]) -> None:
    """Raises when an adapter's class map is inconsistent or leaves the canonical vocabulary."""
    if len(cls.native_classes) != len(cls.canonical_classes):
        raise ValueError(
            f"{cls.__name__}: {len(cls.native_classes)} native classes but "
            f"{len(cls.canonical_classes)} canonical names"
        )
    if cls.canonical_classes[0] != vocabulary.BACKGROUND:
        raise ValueError(f"{cls.__name__}: label 0 must be {vocabulary.BACKGROUND!r}")
    vocabulary.check_canonical(cls.canonical_classes, cls.__name__)


__all__ = [
    "Case",
    "LabelPart",
    "SegmentationAdapter",
    "StandardCase",
    "check_class_map",
    "list_volumes",
    "natural_key",
    "strip_suffixes",
]
