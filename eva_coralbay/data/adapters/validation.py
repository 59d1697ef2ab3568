"""Checks every image/label pair of a dataset before training and reports all problems at once."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

_NIFTI_SUFFIXES = (".nii", ".nii.gz")

_AFFINE_ATOL_MM = 1e-2
"""How far (mm, or unitless for the direction cosines times spacing) two affines may differ.

Images and their labels are often written by different tools that round the header floats
differently; anything larger than this is a real misalignment.
"""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DatasetValidationError(ValueError):
    """A dataset failed validation; the message lists every problem found, one per line."""

    def __init__(self, dataset: str, problems: Sequence[Problem]) -> None:
        self.dataset = dataset
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"{dataset}: {len(self.problems)} problem(s) found, fix them before training:\n{lines}"
        )


@dataclasses.dataclass(frozen=True)
class LabelPart:
    """One label file of a case.

    Most benchmarks ship one label map per case (`class_id` is None: voxel values are class ids).
    TotalSegmentator ships one binary mask per class (`class_id` is the class the mask marks).
    """

    path: Path
    class_id: int | None = None


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What a header says about a volume's grid."""

    shape: tuple[int, ...]
    affine: npt.NDArray[np.float64]


def is_nifti(path: Path) -> bool:
    """Whether a path names a NIfTI file by its suffix."""
    return path.name.endswith(_NIFTI_SUFFIXES)


def read_geometry(path: Path, fallback: Callable[[Path], Geometry] | None = None) -> Geometry:
    """Reads a volume's shape and affine from its header, without reading the voxels.

    Args:
        path: A NIfTI file, or any other scan `fallback` can read.
        fallback: Reads the geometry of formats other than NIfTI (may read the voxels).

    Returns:
        The shape and the 4x4 voxel-to-world (RAS) affine.

    Raises:
        ValueError: If the header cannot be read.
    """
    if is_nifti(path):
        try:
            image = nib.load(path)  # lazy: parses the header only
        except Exception as error:  # nibabel raises several types for broken headers
            raise ValueError(f"unreadable NIfTI header ({error})") from error
        return Geometry(tuple(int(n) for n in image.shape), np.asarray(image.affine))  # type: ignore[attr-defined]
    if fallback is None:
        raise ValueError("not a NIfTI file and no reader was given for its format")
    return fallback(path)


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The 3D shape of a volume, allowing one trailing singleton axis; None if it is not 3D."""
    if len(shape) == 3:
        return shape
    if len(shape) == 4 and shape[3] == 1:
        return shape[:3]
    return None


def read_label_voxels(path: Path) -> npt.NDArray[Any]:
    """Reads a label file's voxels in their stored dtype (no scaling to float)."""
    image = nib.load(path)
    return np.asanyarray(image.dataobj)  # type: ignore[attr-defined]


def check_label_values(voxels: npt.NDArray[Any], allowed_max: int) -> str | None:
    """Checks that label voxels are integers in [0, allowed_max]; returns a problem or None."""
    if voxels.dtype.kind == "f":
        if not np.all(np.isfinite(voxels)):
            return "label holds NaN or infinite values"
        if not np.array_equal(voxels, np.round(voxels)):
            return "label holds non-integer values"
    elif voxels.dtype.kind not in "iub":
        return f"label has a non-numeric dtype {voxels.dtype}"
    low, high = voxels.min(), voxels.max()
    if low >= 0 and high <= allowed_max:
        return None
    outside = np.unique(voxels[(voxels < 0) | (voxels > allowed_max)])
    shown = ", ".join(str(int(value)) for value in outside[:10])
    more = f" and {len(outside) - 10} more" if len(outside) > 10 else ""
    return f"label values {{{shown}{more}}} are outside the class map 0..{allowed_max}"


def check_case(
    image: Path,
    labels: Sequence[LabelPart],
    num_classes: int,
    check_values: bool = True,
    geometry_fallback: Callable[[Path], Geometry] | None = None,
) -> list[Problem]:
    """Checks one image and its label files.

    Args:
        image: The scan.
        labels: Its label files (empty for unlabelled cases).
        num_classes: Number of classes including background: label values must be below it.
        check_values: Whether to read the label voxels to check their values.
        geometry_fallback: Reads the geometry of scans that are not NIfTI.

    Returns:
        Every problem found, each naming its file.
    """
    problems: list[Problem] = []
    image_geometry = _checked_geometry(image, problems, geometry_fallback)
    for part in labels:
        label_geometry = _checked_geometry(part.path, problems, geometry_fallback)
        if label_geometry is None:
            continue
        if image_geometry is not None:
            problems.extend(_compare_geometry(image, image_geometry, part.path, label_geometry))
        if check_values:
            allowed_max = num_classes - 1 if part.class_id is None else 1
            try:
                message = check_label_values(read_label_voxels(part.path), allowed_max)
            except Exception as error:  # a truncated gzip stream surfaces only on the voxel read
                message = f"unreadable label voxels ({error})"
            if message is not None:
                problems.append(Problem(str(part.path), message))
    return problems


def check_cases(
    cases: Iterable[tuple[Path, Sequence[LabelPart]]],
    num_classes: int,
    check_values: bool = True,
    workers: int | None = None,
    geometry_fallback: Callable[[Path], Geometry] | None = None,
) -> list[Problem]:
    """Checks many cases in parallel threads (decompression releases the GIL).

    Args:
        cases: (image, label parts) pairs.
        num_classes: Number of classes including background.
        check_values: Whether to read the label voxels to check their values.
        workers: Number of threads; by default up to 4, never more than the CPUs.
        geometry_fallback: Reads the geometry of scans that are not NIfTI.

    Returns:
        Every problem found, in the order of the cases.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(
            lambda case: check_case(case[0], case[1], num_classes, check_values, geometry_fallback),
            list(cases),
        )
        return [problem for problems in results for problem in problems]


def _checked_geometry(
    path: Path, problems: list[Problem], fallback: Callable[[Path], Geometry] | None
) -> Geometry | None:
    if not path.is_file():
        problems.append(Problem(str(path), "file is missing"))
        return None
    try:
        geometry = read_geometry(path, fallback)
    except Exception as error:  # any reader failure is a problem to report, not to raise
        problems.append(Problem(str(path), str(error)))
        return None
    if spatial_shape(geometry.shape) is None:
        problems.append(Problem(str(path), f"not a 3D volume (shape {geometry.shape})"))
        return None
    if not np.all(np.isfinite(geometry.affine)):
        problems.append(Problem(str(path), "affine holds NaN or infinite values"))
        return None
    return geometry


def _compare_geometry(
    image: Path, image_geometry: Geometry, label: Path, label_geometry: Geometry
) -> list[Problem]:
    image_shape = spatial_shape(image_geometry.shape)
    label_shape = spatial_shape(label_geometry.shape)
    if image_shape != label_shape:
        return [Problem(str(label), f"shape {label_shape} differs from {image.name} {image_shape}")]
    difference = np.abs(image_geometry.affine - label_geometry.affine).max()
    if difference > _AFFINE_ATOL_MM:
        return [
            Problem(
                str(label),
                f"affine differs from {image.name} by up to {difference:.4g} "
                f"(label {np.round(label_geometry.affine, 3).tolist()}, "
                f"image {np.round(image_geometry.affine, 3).tolist()})",
            )
        ]
    return []
