"""Unlabeled CT for pretraining: every scan standardised once, and where its body is."""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Callable, Sequence
from concurrent import futures

import numpy as np

from eva_coralbay.data import cache
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.readers import ScanReadError

logger = logging.getLogger(__name__)

AIR_HU = -1024
"""Value of padding and of voxels outside the scan."""


class ScanError(ValueError):
    """Pretraining data that cannot be used; the message names the scan, folder or manifest."""


@dataclasses.dataclass
class StoredScan:
    """A standardised scan: HU as int16 in RAS at the profile's spacing, and where its body is."""

    source: pathlib.Path
    """The file or DICOM folder it came from."""

    volume: np.ndarray
    """(D, H, W) int16 HU, in memory or memory-mapped from the cache."""

    foreground_cells: np.ndarray
    """Flat indices of the body voxels on the coarse grid `volume[::s, ::s, ::s]`."""

    cell_stride: int
    """The coarse grid's stride s."""


class ScanStore:
    """Standardises every scan once and keeps the result in memory or in an on-disk cache.

    Resampling a CT volume takes seconds on a CPU, far longer than a training step's crops, so
    it happens once per scan (and, with a cache folder, once per scan, profile and code version
    across runs: `eva_coralbay.data.cache.ScanVolumeCache`).
    """

    def __init__(
        self,
        scans: Sequence[pathlib.Path],
        profile: PreprocessingProfile,
        *,
        foreground_hu: float = -500.0,
        min_shape: Sequence[int] = (0, 0, 0),
        cache_dir: str | os.PathLike[str] | None = None,
        skip_bad: bool = False,
        cell_stride: int = 4,
    ) -> None:
        """Plans the store; `prepare` does the work.

        Args:
            scans: Scan files or DICOM folders.
            profile: Orientation and spacing of the standardised volumes.
            foreground_hu: Voxels above this HU count as body.
            min_shape: Smallest shape a standardised scan may have (the smallest crop region).
            cache_dir: Folder of a `ScanVolumeCache` of memory-mapped standardised volumes; None
                keeps them in memory.
            skip_bad: Skip unusable scans (reported together at the end) instead of raising.
            cell_stride: Stride of the coarse grid that records where the body is.
        """
        self.scans = list(scans)
        self.profile = profile
        self.foreground_hu = foreground_hu
        self.min_shape = tuple(min_shape)
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else None
        self.skip_bad = skip_bad
        self.cell_stride = cell_stride
        self.stored: list[StoredScan] = []
        self.skipped: list[tuple[pathlib.Path, str]] = []

    def prepare(self, workers: int = 1, progress: Callable[[int, int], None] | None = None) -> None:
        """Reads and standardises every scan (or opens its cached copy).

        Args:
            workers: Scans standardised in parallel (threads).
            progress: Called with (done, total) after each scan.

        Raises:
            ScanReadError: For the first unreadable scan, unless `skip_bad`.
            ScanError: For the first unusable scan, unless `skip_bad`; and when no scan is usable.
        """
        volumes = cache.ScanVolumeCache(self.cache_dir) if self.cache_dir is not None else None
        results: list[StoredScan | None] = [None] * len(self.scans)
        problems: dict[int, str] = {}
        with futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            jobs = {
                pool.submit(self._load, scan, volumes): index
                for index, scan in enumerate(self.scans)
            }
            for done, job in enumerate(futures.as_completed(jobs), start=1):
                index = jobs[job]
                try:
                    results[index] = job.result()
                except (ScanError, ScanReadError) as error:
                    if not self.skip_bad:
                        for pending in jobs:
                            pending.cancel()
                        raise
                    problems[index] = str(error)
                if progress is not None:
                    progress(done, len(self.scans))
        self.stored = [result for result in results if result is not None]
        self.skipped = [(self.scans[index], problems[index]) for index in sorted(problems)]
        if self.skipped:
            logger.warning(
                "skipped %d of %d scans:\n%s",
                len(self.skipped),
                len(self.scans),
                "\n".join(f"  {message}" for _, message in self.skipped),
            )
        if not self.stored:
            raise ScanError(f"none of the {len(self.scans)} scans is usable for pretraining")

    def _load(self, scan: pathlib.Path, volumes: cache.ScanVolumeCache | None) -> StoredScan:
        if volumes is None:
            volume = cache.read_standardised_hu(scan, self.profile)
        else:
            volume = volumes.volume(scan, self.profile)
        if any(side < needed for side, needed in zip(volume.shape, self.min_shape, strict=True)):
            raise ScanError(
                f"{scan}: standardised to {tuple(volume.shape)} voxels at "
                f"{self.profile.spacing} mm, smaller than the smallest crop region "
                f"{self.min_shape}; use smaller crops, crops.pad_to_crop=true, or "
                "data.skip_bad=true"
            )
        stride = self.cell_stride
        cells = np.flatnonzero(volume[::stride, ::stride, ::stride] > self.foreground_hu)
        if cells.size == 0:
            raise ScanError(
                f"{scan}: no voxel above {self.foreground_hu} HU; is it a CT in Hounsfield units?"
            )
        return StoredScan(scan, volume, cells.astype(np.int64), stride)
