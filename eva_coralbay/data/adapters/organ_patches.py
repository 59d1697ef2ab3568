"""Organ classification from fixed-size patches around the organs of any segmentation adapter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.datasets.vision import VisionDataset
from scipy import ndimage
from typing_extensions import override

from eva_coralbay.data.adapters.base import SegmentationAdapter, StandardCase

AIR_HU = -1000.0
"""Patches reaching outside the scan are padded with air, scaled like the scan."""


@dataclasses.dataclass(frozen=True)
class Patch:
    """One organ of one case: where its patch is centred."""

    case_index: int
    case_id: str
    class_id: int
    centre: tuple[int, int, int]
    voxels: int


class OrganPatches(VisionDataset[eva_tv_tensors.Volume, torch.Tensor]):
    """Which organ is this? One fixed-size patch per labelled organ per case of a source dataset.

    For every case of `source` (already split by case, so no case is in two splits) and every
    class in `classes` with at least `min_voxels` voxels, the patch is the `patch_size` cube of
    the standardised volume (the source's profile grid, e.g. 1.5 mm for CoralBay: 64 voxels =
    96 mm) centred on the centre of the organ's bounding box; where it reaches outside the scan it
    is padded with air (-1000 HU, scaled like the scan). The target is the organ's index in
    `classes`. Patches are listed case by case in the source's order, organs by label id.
    """

    def __init__(
        self,
        source: SegmentationAdapter,
        patch_size: int | Sequence[int] = 64,
        classes: Sequence[str] | None = None,
        min_voxels: int = 100,
        transforms: Callable | None = None,
        num_classes: int | None = None,
    ) -> None:
        """Initializes the dataset.

        Args:
            source: A segmentation adapter with a profile (its split selects the cases).
            patch_size: Patch edge(s) in voxels of the profile grid.
            classes: Canonical names of the organs to classify; all of the source's classes
                but background when None.
            min_voxels: Organs with fewer voxels in a case (e.g. cut by the scan's edge) are
                skipped for that case.
            transforms: Transforms applied to `(volume, target)`.
            num_classes: The number of classes the config's classifier has; a different number
                of `classes` is an error (None: no check).
        """
        super().__init__(transforms=transforms)
        if source.profile is None:
            raise ValueError(
                "OrganPatches needs a source with a profile: fixed-size patches only mean the "
                "same physical size on a standardised grid"
            )
        size = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"patch_size must be 1 or 3 positive integers, got {patch_size!r}")
        available = list(source.classes)[1:]
        chosen = list(classes) if classes is not None else available
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise ValueError(f"classes {unknown} are not in {type(source).__name__}: {available}")
        if num_classes is not None and num_classes != len(chosen):
            raise ValueError(
                f"{len(chosen)} organ classes {chosen} of {type(source).__name__}, but the "
                f"config's classifier has num_classes={num_classes}"
            )
        self._source = source
        self._size: tuple[int, int, int] = (int(size[0]), int(size[1]), int(size[2]))
        self._classes = chosen
        self._class_ids = [source.class_to_idx[name] for name in chosen]
        self._min_voxels = min_voxels
        self._patches: list[Patch] = []
        self._last: StandardCase | None = None

    @property
    def source(self) -> SegmentationAdapter:
        """The segmentation dataset the patches come from."""
        return self._source

    @property
    def patches(self) -> list[Patch]:
        """The patches, in order (after `configure`)."""
        return list(self._patches)

    @property
    @override
    def classes(self) -> list[str]:
        return list(self._classes)

    @property
    @override
    def class_to_idx(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self._classes)}

    @override
    def prepare_data(self) -> None:
        self._source.prepare_data()

    @override
    def configure(self) -> None:
        self._source.configure()
        self._patches = []
        for case_index in range(len(self._source)):
            standard = self._standard(case_index)
            self._patches.extend(self._organs(case_index, standard))

    @override
    def validate(self) -> None:
        self._source.validate()

    @override
    def filename(self, index: int) -> str:
        patch = self._patches[index]
        return f"{patch.case_id}/{self._source.classes[patch.class_id]}"

    @override
    def __len__(self) -> int:
        return len(self._patches)

    @override
    def __getitem__(self, index: int) -> tuple[eva_tv_tensors.Volume, torch.Tensor, dict[str, Any]]:
        volume, target = self.load_data(index), self.load_target(index)
        volume, target = self._apply_transforms(volume, target)
        return volume, target, self.load_metadata(index)

    @override
    def load_data(self, index: int) -> eva_tv_tensors.Volume:
        patch = self._patches[index]
        standard = self._standard(patch.case_index)
        profile = self._source.profile
        assert profile is not None
        return patch_volume(
            standard.image, standard.affine, patch.centre, self._size, profile.scale_hu(AIR_HU)
        )

    @override
    def load_target(self, index: int) -> torch.Tensor:
        class_id = self._patches[index].class_id
        return torch.tensor(self._class_ids.index(class_id), dtype=torch.long)

    @override
    def load_metadata(self, index: int) -> dict[str, Any]:
        patch = self._patches[index]
        return {
            "case_id": patch.case_id,
            "organ": self._source.classes[patch.class_id],
            "centre": list(patch.centre),
        }

    def _standard(self, case_index: int) -> StandardCase:
        # Patches are listed case by case, so keeping the last case serves every organ of it.
        if self._last is None or self._last.case_id != self._source.cases[case_index].case_id:
            self._last = self._source.load_standard(case_index)
        return self._last

    def _organs(self, case_index: int, standard: StandardCase) -> list[Patch]:
        label = np.asarray(standard.label)
        counts = np.bincount(label.ravel().astype(np.int64), minlength=max(self._class_ids) + 1)
        boxes = ndimage.find_objects(label.astype(np.int64))
        patches = []
        for class_id in sorted(self._class_ids):
            if class_id > len(boxes) or boxes[class_id - 1] is None:
                continue
            if counts[class_id] < self._min_voxels:
                continue
            box = boxes[class_id - 1]
            centre = tuple(int((s.start + s.stop - 1) // 2) for s in box)  # type: ignore[union-attr]
            patches.append(
                Patch(case_index, standard.case_id, class_id, centre, int(counts[class_id]))  # type: ignore[arg-type]
            )
        return patches


def crop_padded(
    array: npt.NDArray[Any], start: Sequence[int], size: Sequence[int], pad_value: float
) -> npt.NDArray[np.float32]:
    """The `size` box of `array` starting at `start` (may reach outside), padded with `pad_value`.

    Only the part inside the array is read, so a memory-mapped array stays mostly on disk.
    """
    out = np.full(tuple(size), pad_value, dtype=np.float32)
    source_slices, target_slices = [], []
    for begin, length, extent in zip(start, size, array.shape, strict=True):
        low, high = max(begin, 0), min(begin + length, extent)
        if high <= low:
            return out
        source_slices.append(slice(low, high))
        target_slices.append(slice(low - begin, high - begin))
    out[tuple(target_slices)] = array[tuple(source_slices)]
    return out


def patch_volume(
    image: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    centre: Sequence[int],
    size: Sequence[int],
    pad_value: float,
) -> eva_tv_tensors.Volume:
    """The `size` box of a standardised `image` centred on voxel `centre`, with its own affine."""
    start = [c - s // 2 for c, s in zip(centre, size, strict=True)]
    voxels = crop_padded(image, start, size, pad_value)
    translation = np.eye(4)
    translation[:3, 3] = start
    return eva_tv_tensors.Volume(
        torch.from_numpy(voxels)[None], affine=torch.from_numpy(affine @ translation)
    )
