"""3D multi-crop: two global and several local views of a standardised scan, each augmented."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
import torch
from monai.data.meta_tensor import MetaTensor
from monai.transforms.compose import Compose
from monai.transforms.intensity.array import (
    RandGaussianNoise,
    RandGaussianSmooth,
    RandScaleIntensity,
    RandShiftIntensity,
)
from monai.transforms.spatial.array import RandFlip, RandRotate90, Resize
from monai.transforms.transform import Randomizable

from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.pretraining.config import CropConfig
from eva_coralbay.pretraining.scans import AIR_HU, ScanError, StoredScan


@dataclasses.dataclass(frozen=True)
class CropKind:
    """One kind of view: its output side and the range of region side / output side."""

    name: str
    """'global' or 'local'."""

    size: tuple[int, int, int]
    """Output shape (x, y, z) in voxels."""

    zoom: tuple[float, float]
    """Range of region side / output side."""

    def smallest_region(self) -> tuple[int, int, int]:
        """Shape of the smallest region this kind of view can be cut from."""
        return _triple(math.ceil(side * self.zoom[0]) for side in self.size)


class MultiCrop:
    """Cuts 2 global and N local overlapping views around a random body position of a scan.

    Per sample, an anchor is drawn among the body voxels (HU above the threshold); each view is a
    region of `size * zoom` voxels centred within `view_spread` global-crop sides of the anchor
    (so the views overlap), resized to `size` (its spacing is the profile's times `zoom`), mapped to
    [0, 1] through a randomly shifted and scaled HU window, flipped, rotated by multiples of 90°
    in the axial plane and jittered in intensity.
    """

    def __init__(self, config: CropConfig, profile: PreprocessingProfile) -> None:
        """Builds the augmentations.

        Args:
            config: Crop sizes, scales and augmentation strengths.
            profile: The scans' spacing, and the HU window jittered per view.
        """
        self.config = config
        self.profile = profile
        self.global_kind = CropKind(
            "global", _triple(config.global_size), _pair(config.global_zoom)
        )
        self.local_kind = CropKind("local", _triple(config.local_size), _pair(config.local_zoom))
        self._geometric = Compose(
            [RandFlip(prob=config.flip_prob, spatial_axis=axis) for axis in range(3)]
            + [RandRotate90(prob=config.rot90_prob, max_k=3, spatial_axes=(0, 1))]
        )
        self._intensity = Compose(
            [
                RandScaleIntensity(factors=config.intensity_scale, prob=1.0),
                RandShiftIntensity(offsets=config.intensity_shift, prob=1.0),
                RandGaussianSmooth(
                    sigma_x=(0.5, 1.0),
                    sigma_y=(0.5, 1.0),
                    sigma_z=(0.5, 1.0),
                    prob=config.blur_prob,
                ),
                RandGaussianNoise(prob=config.noise_prob, std=config.noise_std),
            ]
        )
        self._randomized: list[Randomizable] = [
            transform
            for compose in (self._geometric, self._intensity)
            for transform in compose.transforms
            if isinstance(transform, Randomizable)
        ]

    def smallest_region(self) -> tuple[int, int, int]:
        """The smallest scan shape every kind of view can still be cut from without padding."""
        return _triple(
            max(sides)
            for sides in zip(
                self.global_kind.smallest_region(),
                self.local_kind.smallest_region(),
                strict=True,
            )
        )

    def __call__(self, scan: StoredScan, rng: np.random.RandomState) -> dict[str, list[MetaTensor]]:
        """Returns `{"global": [2 views], "local": [num_local views]}`, each (1, X, Y, Z)."""
        for transform in self._randomized:
            transform.set_random_state(state=rng)
        # All views of a sample look at one neighbourhood (like DINO's crops of one image):
        # independent positions would only teach the encoder which scan a crop comes from.
        anchor = body_voxel(scan, rng)
        spread = self.config.view_spread * np.asarray(self.global_kind.size, dtype=np.float64)
        kinds = [self.global_kind] * 2 + [self.local_kind] * self.config.num_local
        views = []
        for kind in kinds:
            offset = np.rint(rng.uniform(-spread, spread)).astype(int)
            views.append(self.view(scan, kind, rng, centre=anchor + offset))
        return {"global": views[:2], "local": views[2:]}

    def view(
        self,
        scan: StoredScan,
        kind: CropKind,
        rng: np.random.RandomState,
        centre: np.ndarray | None = None,
    ) -> MetaTensor:
        """Cuts and augments one view of `kind`; its affine records the resulting spacing.

        Args:
            scan: The standardised scan.
            kind: Global or local.
            rng: The sample's random state.
            centre: Voxel the view is centred on (moved inwards where the view would leave the
                scan); a random body voxel when None.
        """
        shape = np.asarray(scan.volume.shape)
        size = np.asarray(kind.size)
        zoom_high = kind.zoom[1]
        if not self.config.pad_to_crop:
            # Large zooms that do not fit this scan are left out rather than padded.
            zoom_high = min(zoom_high, float((shape / size).min()))
            if zoom_high < kind.zoom[0]:
                raise ScanError(
                    f"{scan.source}: standardised shape {tuple(shape.tolist())} is smaller than a "
                    f"{kind.name} crop region {kind.smallest_region()}; use smaller crops, "
                    "crops.pad_to_crop=true or data.skip_bad=true"
                )
        zoom = rng.uniform(low=kind.zoom[0], high=zoom_high)
        region = np.maximum(1, np.rint(size * zoom).astype(int))
        if centre is None:
            centre = body_voxel(scan, rng)
        start = _region_start(np.asarray(scan.volume.shape), centre, region)
        hu = _extract(scan.volume, start, region)
        spacing = np.asarray(self.profile.spacing, dtype=np.float64)
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = start * spacing
        view = MetaTensor(
            torch.from_numpy(hu.astype(np.float32))[None], affine=torch.from_numpy(affine)
        )
        if (region != size).any():
            view = Resize(spatial_size=kind.size, mode="trilinear")(view)
        view = self._window(view, rng)  # type: ignore[arg-type]
        view = self._geometric(view)
        return self._intensity(view)  # type: ignore[return-value]

    def _window(self, view: MetaTensor, rng: np.random.RandomState) -> MetaTensor:
        """Maps HU to the profile's output range through a randomly moved and scaled window."""
        low, high = self.profile.intensity_range
        jitter = self.config.window_center_jitter
        center = (low + high) / 2 + rng.uniform(low=-jitter, high=jitter)
        width_low, width_high = self.config.window_width_scale
        width = (high - low) * rng.uniform(low=width_low, high=width_high)
        out_low, out_high = self.profile.output_range
        scaled = (view - (center - width / 2)) * ((out_high - out_low) / width) + out_low
        if self.profile.clip:
            scaled = scaled.clamp(min(out_low, out_high), max(out_low, out_high))
        return scaled  # type: ignore[return-value]


def _pair(values: list[float]) -> tuple[float, float]:
    return float(values[0]), float(values[1])


def _triple(values: Iterable[int]) -> tuple[int, int, int]:
    x, y, z = (int(value) for value in values)
    return x, y, z


def body_voxel(scan: StoredScan, rng: np.random.RandomState) -> np.ndarray:
    """A random voxel of the scan's body (HU above the foreground threshold)."""
    shape = np.asarray(scan.volume.shape)
    stride = scan.cell_stride
    coarse_shape = -(-shape // stride)
    cell = scan.foreground_cells[rng.randint(len(scan.foreground_cells))]
    voxel = np.asarray(np.unravel_index(cell, tuple(coarse_shape))) * stride
    return np.minimum(voxel + rng.randint(0, stride, size=3), shape - 1)


def _region_start(shape: np.ndarray, centre: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Start corner of a region centred on `centre`, kept inside the scan where it fits."""
    start = centre - region // 2
    low = np.minimum(0, shape - region)
    high = np.maximum(0, shape - region)
    return np.clip(start, low, high)


def _extract(volume: np.ndarray, start: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The cube at `start`, with air wherever it overhangs the volume."""
    shape = np.asarray(volume.shape)
    stop = start + region
    if (start >= 0).all() and (stop <= shape).all():
        inside = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        return np.ascontiguousarray(volume[inside])
    cube = np.full(tuple(region), AIR_HU, dtype=volume.dtype)
    source = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, shape, strict=True))
    target = tuple(slice(s.start - a, s.stop - a) for s, a in zip(source, start, strict=True))
    cube[target] = volume[source]
    return cube
