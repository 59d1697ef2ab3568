"""Deterministic synthetic torso CT phantoms with organ labels, for the demo and tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

ORGANS: dict[int, str] = {
    1: "spleen",
    2: "kidney_right",
    3: "kidney_left",
    4: "liver",
    5: "stomach",
    6: "aorta",
}
"""Phantom label ids and their TotalSegmentator v2 names (0 is background)."""

_ORGAN_HU: dict[str, tuple[float, float]] = {
    # (mean, case-to-case spread) in HU, near non-contrast abdominal CT as read off
    # TotalSegmentator's reference scan (spleen ~35, kidneys ~15, liver ~46, aorta ~41).
    "spleen": (40.0, 6.0),
    "kidney_right": (25.0, 6.0),
    "kidney_left": (25.0, 6.0),
    "liver": (55.0, 8.0),
    "stomach": (30.0, 5.0),
    "aorta": (45.0, 5.0),
}

# Ellipsoids as (centre, semi-axes): x and y as fractions of the torso's half width and half
# depth, z in millimetres below the top of the volume. RAS: +x is the patient's right, +y
# anterior. An organ is the union of its "add" ellipsoids minus its "cut" ones, which gives the
# liver its left lobe, the spleen its crescent, the kidneys their hilum and the stomach its bend.
_Ellipsoid = tuple[tuple[float, float, float], tuple[float, float, float]]
_SHAPES: dict[str, dict[str, list[_Ellipsoid]]] = {
    "liver": {
        "add": [
            ((0.45, 0.05, 60.0), (0.42, 0.55, 55.0)),
            ((-0.05, 0.40, 50.0), (0.35, 0.22, 28.0)),
        ],
        "cut": [((0.25, -0.45, 95.0), (0.25, 0.25, 30.0))],
    },
    "spleen": {
        "add": [((-0.58, -0.28, 70.0), (0.16, 0.24, 38.0))],
        "cut": [((-0.42, -0.18, 70.0), (0.10, 0.16, 30.0))],
    },
    "stomach": {
        "add": [
            ((-0.35, 0.25, 55.0), (0.18, 0.22, 25.0)),
            ((-0.10, 0.45, 85.0), (0.25, 0.15, 18.0)),
        ],
        "cut": [],
    },
    "kidney_right": {
        "add": [((0.38, -0.40, 125.0), (0.12, 0.16, 33.0))],
        "cut": [((0.25, -0.35, 125.0), (0.05, 0.06, 10.0))],
    },
    "kidney_left": {
        "add": [((-0.38, -0.40, 115.0), (0.12, 0.16, 33.0))],
        "cut": [((-0.25, -0.35, 115.0), (0.05, 0.06, 10.0))],
    },
}


@dataclasses.dataclass(frozen=True)
class Phantom:
    """One synthetic CT scan: HU voxels, organ labels and the voxel-to-RAS affine."""

    image: np.ndarray
    """HU values, int16, shape (X, Y, Z) in RAS voxel order."""

    label: np.ndarray
    """Organ ids of `ORGANS` (0 background), uint8, same shape."""

    affine: np.ndarray
    """4x4 voxel-to-world (RAS, mm) matrix."""


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Low-frequency noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _ellipsoid(
    grid: Sequence[np.ndarray],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
    roughness: np.ndarray,
    amplitude: float,
) -> np.ndarray:
    """A mask of an ellipsoid (mm) whose surface is displaced by a smooth random field."""
    distance = sum(((axis - c) / r) ** 2 for axis, c, r in zip(grid, centre, radii, strict=True))
    return np.sqrt(distance) + amplitude * roughness < 1.0


def make_phantom(
    seed: int,
    shape: tuple[int, int, int] = (96, 80, 64),
    spacing: float = 3.0,
) -> Phantom:
    """Generates one torso phantom; the same seed always gives the same scan.

    The torso is an elliptic cylinder of muscle under a subcutaneous fat layer, with visceral
    fat, the lung bases at the top, a vertebral column, and six labelled abdominal organs placed
    where they sit in a patient, with per-case size, position, shape and intensity variation,
    smooth surface irregularity, partial-volume blur and scanner noise.

    Args:
        seed: The case's random seed.
        shape: Voxels along x (left to right), y (posterior to anterior), z (inferior to
            superior).
        spacing: Isotropic voxel size in mm.

    Returns:
        The phantom; its affine centres the volume on the world origin.
    """
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing for n in shape], indexing="ij")
    x, y, z = grid
    roughness = _smooth_field(rng, shape, sigma=6.0)
    size = rng.uniform(0.9, 1.1)
    half_width = 0.45 * shape[0] * spacing * size
    half_depth = 0.40 * shape[1] * spacing * size
    top = float(z.max())

    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (x / half_width) ** 2 + (y / half_depth) ** 2 + 0.03 * roughness < 1.0
    inner = (x / (half_width - 15)) ** 2 + (y / (half_depth - 15)) ** 2 < 1.0
    visceral = (x / (half_width - 35)) ** 2 + ((y - 10) / (half_depth - 30)) ** 2 < 1.0
    hu[body] = -100.0 + rng.normal(0, 8)
    hu[inner] = 45.0 + rng.normal(0, 5)
    fat_texture = _smooth_field(rng, shape, sigma=3.0)
    hu[visceral] = -80.0 + 30.0 * fat_texture[visceral]

    lungs = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        lungs |= _ellipsoid(
            grid,
            (side * 0.45 * half_width, 0.0, top + 10.0),
            (0.35 * half_width, 0.6 * half_depth, 60.0),
            roughness,
            0.05,
        )
    lungs &= inner
    hu[lungs] = -850.0

    spine_radius = (x**2 + (y + 0.55 * half_depth) ** 2) ** 0.5
    vertebra = (spine_radius < 0.13 * half_depth) & body
    hu[vertebra] = 350.0
    hu[vertebra & (spine_radius > 0.10 * half_depth)] = 800.0
    # Intervertebral discs every ~30 mm.
    hu[vertebra & (np.mod(z + rng.uniform(0, 30), 30.0) < 6.0)] = 90.0

    label = np.zeros(shape, dtype=np.uint8)
    organ_ids = {name: organ_id for organ_id, name in ORGANS.items()}
    shift = rng.normal(0, 4, size=3)
    for name, parts in _SHAPES.items():
        growth = rng.uniform(0.9, 1.1, size=3)

        def place(ellipsoid: _Ellipsoid, growth: np.ndarray = growth) -> np.ndarray:
            (cx, cy, depth), radii = ellipsoid
            centre_mm = (
                cx * half_width + shift[0],
                cy * half_depth + shift[1],
                top - depth + shift[2],
            )
            radii_mm = (
                radii[0] * half_width * growth[0],
                radii[1] * half_depth * growth[1],
                radii[2] * growth[2],
            )
            return _ellipsoid(grid, centre_mm, radii_mm, roughness, 0.08)

        mask = np.zeros(shape, dtype=bool)
        for ellipsoid in parts["add"]:
            mask |= place(ellipsoid)
        for ellipsoid in parts["cut"]:
            mask &= ~place(ellipsoid)
        label[mask & inner & ~lungs & (label == 0)] = organ_ids[name]
    aorta_radius = 0.11 * half_depth * rng.uniform(0.9, 1.1)
    aorta = (x + 0.12 * half_width) ** 2 + (y + 0.3 * half_depth) ** 2 < aorta_radius**2
    label[aorta & inner & ~lungs & (label == 0)] = organ_ids["aorta"]

    texture = _smooth_field(rng, shape, sigma=1.5)
    for organ_id, name in ORGANS.items():
        mean, spread = _ORGAN_HU[name]
        mask = label == organ_id
        hu[mask] = rng.normal(mean, spread) + 8.0 * texture[mask]
    # Swallowed air rises to the front of the stomach's lumen.
    stomach = label == organ_ids["stomach"]
    if stomach.any():
        air_level = np.percentile(y[stomach], 85)
        hu[stomach & (y > air_level) & (fat_texture > -0.5)] = -900.0

    hu = ndimage.gaussian_filter(hu, sigma=0.7)
    hu += rng.normal(0, 12.0, size=shape).astype(np.float32)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * spacing for n in shape]
    return Phantom(
        image=np.clip(np.round(hu), -1024, 3071).astype(np.int16),
        label=label,
        affine=affine,
    )
