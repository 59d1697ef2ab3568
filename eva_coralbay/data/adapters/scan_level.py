"""The contract of scan-level classification adapters: one whole scan, one class, one patient."""

from __future__ import annotations

import abc
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.datasets.vision import VisionDataset
from monai.data.meta_tensor import MetaTensor
from typing_extensions import override

from eva_coralbay.data import cache as cache_store
from eva_coralbay.data import profile as profiles
from eva_coralbay.data.adapters.validation import DatasetValidationError, Problem


class ScanRecord(Protocol):
    """What a scan-level adapter knows of each scan before reading it."""

    @property
    def case_id(self) -> str:
        """Unique in the dataset; the cache's key."""
        ...

    @property
    def split(self) -> str:
        """The split the scan belongs to."""
        ...

    @property
    def patient_id(self) -> str:
        """The patient, whom no two splits share."""
        ...

    @property
    def target(self) -> int:
        """The class index."""
        ...

    @property
    def image(self) -> Path:
        """The scan's file or folder."""
        ...

    def source_files(self) -> list[Path]:
        """The files the standardised volume is computed from (the cache's freshness key)."""
        ...


ScanT = TypeVar("ScanT", bound=ScanRecord)


@dataclasses.dataclass(frozen=True)
class StandardScan:
    """A scan after the profile: its `[X, Y, Z]` image on the profile's grid and its affine."""

    case_id: str
    split: str
    image: npt.NDArray[np.float32]
    affine: npt.NDArray[np.float64]
    label: None = None
    """Scan-level task: no voxel labels (what the cache stores beside the image)."""


class ScanClassificationAdapter(VisionDataset[eva_tv_tensors.Volume, torch.Tensor], Generic[ScanT]):
    """Whole CT scans, each standardised by the model's profile, with one class per scan.

    Each sample is `(volume, target, metadata)`: an eva `Volume` `[1, X, Y, Z]` on the
    profile's grid (with its affine), the class index, and the case and patient ids. The
    standardised volume comes from the `coralbay preprocess` cache when it holds a fresh copy.
    A benchmark module provides the scans (`catalogue`), how one is read (`read_scan`), its
    checks (`problems`) and its class names (`classes`).
    """

    task_id: ClassVar[str]
    """The leaderboard task id (and the cache's folder)."""

    split_names: ClassVar[tuple[str, ...]] = ("train", "val")
    """The splits a scan may belong to."""

    native_classes: ClassVar[tuple[str, ...]] = ()
    """The release's own class names by target; empty where the data name them (a table)."""

    def __init__(
        self,
        root: str,
        split: str | None = None,
        profile: str | profiles.PreprocessingProfile | dict[str, Any] = "radiology/coralbay",
        transforms: Callable | None = None,
        cache: str | None = None,
        use_cache: bool = True,
        allow_incomplete: bool = False,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: Where the dataset is (a folder, or a benchmark's own index file).
            split: One of `split_names`, or None for every scan.
            profile: The model's preprocessing (a registry name, a profile or its mapping).
            transforms: Transforms applied to `(volume, target)`.
            cache: The `coralbay preprocess` cache folder; None: `$CORALBAY_CACHE` or the
                default.
            use_cache: Whether to read standardised volumes from the cache when fresh.
            allow_incomplete: Use the listed scans that are present; others are left out.

        Raises:
            ValueError: For a split that is not one of `split_names`.
        """
        super().__init__(transforms=transforms)
        name = type(self).__name__
        if split is not None and split not in self.split_names:
            raise ValueError(f"{name}: unknown split {split!r}; use one of {self.split_names}")
        self._root = Path(root)
        self._split = split
        self._profile = profiles.resolve_profile(profile)
        self._cache_root = Path(cache) if cache else cache_store.default_cache_dir()
        self._use_cache = use_cache
        self._allow_incomplete = allow_incomplete
        self._scans: list[ScanT] = []
        self._cache: cache_store.CacheReader | None = None

    # ----------------------------------------------------------------------------------------
    # What each benchmark module provides.

    @abc.abstractmethod
    def catalogue(self) -> list[ScanT]:
        """Every scan of every split, with the path it should have (present or not)."""

    @abc.abstractmethod
    def problems(self) -> list[Problem]:
        """Every problem of the dataset and the selected scans, each naming its file."""

    @abc.abstractmethod
    def read_scan(self, scan: ScanT) -> MetaTensor:
        """The scan as read, `[1, X, Y, Z]` in Hounsfield units with its affine."""

    @abc.abstractmethod
    def obtain_instructions(self) -> str:
        """How to obtain (or lay out) the data."""

    # ----------------------------------------------------------------------------------------
    # What the cache, the CLI and the robustness track read.

    @property
    def root(self) -> Path:
        """Where the dataset is."""
        return self._root

    @property
    def profile(self) -> profiles.PreprocessingProfile:
        """The preprocessing profile applied to every scan."""
        return self._profile

    @property
    def cases(self) -> list[ScanT]:
        """The selected split's scans, in order (after `configure`)."""
        return list(self._scans)

    # ----------------------------------------------------------------------------------------
    # eva's dataset hooks.

    @override
    def prepare_data(self) -> None:
        if not self._root.exists() or (self._root.is_dir() and not any(self._root.iterdir())):
            print(self.obtain_instructions(), file=sys.stderr)

    @override
    def configure(self) -> None:
        scans = [scan for scan in self.catalogue() if self._split in (None, scan.split)]
        if self._allow_incomplete:
            scans = [scan for scan in scans if scan.image.exists()]
        self._scans = scans
        self._cache = None
        if self._use_cache:
            self._cache = cache_store.CacheReader.open(
                self._cache_root, self.task_id, self._profile, type(self)
            )

    @override
    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise DatasetValidationError(f"{type(self).__name__} at {self._root}", problems)

    @override
    def filename(self, index: int) -> str:
        # eva's embeddings writer names the file after this, without its suffix, under its
        # output folder: a relative path, never an absolute one that would leave the folder.
        image = self._scans[index].image
        try:
            return image.relative_to(self._root).as_posix()
        except ValueError:
            return image.relative_to(image.anchor).as_posix()

    @override
    def __len__(self) -> int:
        return len(self._scans)

    @override
    def __getitem__(self, index: int) -> tuple[eva_tv_tensors.Volume, torch.Tensor, dict[str, Any]]:
        volume, target = self.load_data(index), self.load_target(index)
        volume, target = self._apply_transforms(volume, target)
        return volume, target, self.load_metadata(index)

    @override
    def load_data(self, index: int) -> eva_tv_tensors.Volume:
        standard = self.load_standard(index)
        # Copies a memory-mapped cache array into memory: tensors must be writable.
        image = np.require(standard.image, dtype=np.float32, requirements=["W", "C"])
        return eva_tv_tensors.Volume(
            torch.from_numpy(image)[None],
            affine=torch.from_numpy(np.array(standard.affine, dtype=np.float64)),
            metadata={"case_id": standard.case_id},
        )

    @override
    def load_target(self, index: int) -> torch.Tensor:
        return torch.tensor(self._scans[index].target, dtype=torch.long)

    @override
    def load_metadata(self, index: int) -> dict[str, Any]:
        scan = self._scans[index]
        return {"case_id": scan.case_id, "patient_id": scan.patient_id}

    # ----------------------------------------------------------------------------------------
    # Standardised volumes.

    def is_cached(self, scan: ScanT) -> bool:
        """Whether the cache holds a fresh copy of the scan (checked when it was cached)."""
        return self._cache is not None and self._cache.is_fresh(scan.case_id, scan.source_files())

    def load_standard(self, index: int) -> StandardScan:
        """The scan after the profile, from the cache when it holds a fresh copy."""
        scan = self._scans[index]
        if self._cache is not None:
            cached = self._cache.load_image(scan.case_id, scan.source_files())
            if cached is not None:
                return StandardScan(scan.case_id, scan.split, *cached)
        return self.standardise(scan)

    def standardise(self, case: ScanT) -> StandardScan:
        """Reads a scan from its source files and applies the profile (never the cache)."""
        image, _ = self._profile.apply(self.read_scan(case))
        return StandardScan(
            case_id=case.case_id,
            split=case.split,
            image=np.ascontiguousarray(image.detach().cpu().numpy()[0], dtype=np.float32),
            affine=np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64),  # type: ignore[union-attr]
        )
