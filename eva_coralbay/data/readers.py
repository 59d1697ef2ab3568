"""Read CT scans and label maps (NIfTI, DICOM series, MetaImage, NRRD) into MONAI MetaTensors.

Every format goes through a MONAI reader: `NibabelReader` for NIfTI, `PydicomReader` (pydicom,
with pylibjpeg-openjpeg for JPEG-2000 slices) for DICOM series folders and `ITKReader` (itk-io)
for MetaImage and NRRD. This module adds what those readers leave to the caller: geometric
slice order and consistency checks for DICOM, shape / finiteness checks, and one error type that
names the file and what is wrong with it.

A scan comes back channel-first, `[1, X, Y, Z]` float32 in Hounsfield units (DICOM rescale
slope / intercept and NIfTI scaling applied), with a RAS world affine in its meta.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from eva_coralbay import _io

if TYPE_CHECKING:
    from monai.data.meta_tensor import MetaTensor

PathLike = str | os.PathLike[str]

FORMATS_BY_SUFFIX = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}
"""File suffixes read as single files; a folder is read as one DICOM series."""

GRID_TOLERANCE_VOXELS = 0.05
"""How far (in voxels, at any corner) a label's grid may sit from its scan's and still match."""

_SLICE_SPACING_TOLERANCE = 0.01
"""Relative deviation of one DICOM slice step from the median step that is still uniform."""


class ScanReadError(ValueError):
    """A scan or label file that cannot be read as a 3D volume; the message names the file."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ScanNotFoundError(ScanReadError, FileNotFoundError):
    """The scan or label path does not exist."""


def scan_format(path: PathLike) -> str:
    """Returns the format a path is read as: "nifti", "dicom", "metaimage" or "nrrd".

    Raises:
        ScanNotFoundError: When nothing exists at `path`.
        ScanReadError: For a suffix no reader handles, or a single DICOM file.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        return "dicom"
    if not path.exists():
        raise ScanNotFoundError(path, "no such file or folder")
    name = path.name.lower()
    for suffix, format_name in sorted(FORMATS_BY_SUFFIX.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return format_name
    if name.endswith(".dcm") or _io.is_dicom_file(path):
        raise ScanReadError(
            path, "a single DICOM file is one 2D slice; pass the folder holding the whole series"
        )
    raise ScanReadError(
        path,
        f"unsupported file type; readable: {', '.join(sorted(FORMATS_BY_SUFFIX))} files "
        "or a folder holding one DICOM series",
    )


def read_scan(path: PathLike) -> MetaTensor:
    """Reads a CT scan as a channel-first float32 MetaTensor in Hounsfield units.

    Args:
        path: A NIfTI / MetaImage / NRRD file or a folder holding one DICOM series.

    Returns:
        Shape `[1, X, Y, Z]`; meta holds `affine` (voxel -> RAS world, mm), `spacing` (mm per
        axis), `filename_or_obj` (the path), `format` and `spatial_shape`.

    Raises:
        ScanReadError: When the file is missing, unreadable, not 3D (a 2D slice, a 4D series)
            or holds NaN / infinite values; the message names the file and the problem.
    """
    array, affine, extra = _read_volume(path)
    non_finite = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if non_finite:
        raise ScanReadError(
            path, f"{non_finite} of {array.size} voxels are NaN or infinite (a corrupt scan?)"
        )
    return to_meta_tensor(array.astype(np.float32, copy=False), affine, path, extra)


def read_label(path: PathLike, reference: MetaTensor | None = None) -> MetaTensor:
    """Reads an integer label map as a channel-first int64 MetaTensor.

    Args:
        path: The label file (any format `read_scan` reads).
        reference: The scan the labels belong to. The label grid must cover the same voxels
            (same world positions, within `GRID_TOLERANCE_VOXELS`); when its axes are ordered
            or flipped differently, the labels are permuted and flipped into the scan's voxel
            layout, so that `label[..., i, j, k]` labels `reference[..., i, j, k]`.

    Returns:
        Shape `[1, X, Y, Z]` (the reference's spatial shape and affine when given).

    Raises:
        ScanReadError: When the file is unreadable or not 3D, holds non-integer or non-finite
            values, or lies on a different grid from `reference`.
    """
    array, affine, extra = _read_volume(path)
    if not np.isfinite(array).all():
        raise ScanReadError(path, "label map holds NaN or infinite values")
    rounded = np.rint(array)
    if not np.array_equal(rounded, array):
        fractional = np.unique(array[rounded != array])[:5]
        raise ScanReadError(
            path, f"label map holds non-integer values (e.g. {fractional.tolist()})"
        )
    labels = rounded.astype(np.int64)
    if reference is not None:
        reference_affine = _affine_array(reference)
        reference_shape = tuple(int(size) for size in reference.shape[1:])
        labels = _resample_onto_reference(
            labels, affine, reference_affine, reference_shape, path, reference
        )
        extra["original_affine"] = affine
        affine = reference_affine
    return to_meta_tensor(labels, affine, path, extra)


def _read_volume(path: PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Reads any supported path into a 3D array, its RAS affine and extra meta."""
    format_name = scan_format(path)
    try:
        if format_name == "dicom":
            array, affine, extra = _read_dicom_series(pathlib.Path(path))
        else:
            array, affine, extra = _read_file(pathlib.Path(path), format_name)
    except ScanReadError:
        raise
    except Exception as error:  # the readers raise anything from EOFError to RuntimeError
        raise ScanReadError(
            path, f"cannot read as {format_name}: {type(error).__name__}: {error}"
        ) from error
    array = _as_3d(array, path)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ScanReadError(path, f"the voxel-to-world affine is invalid: {affine.tolist()}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ScanReadError(path, "the voxel-to-world affine is singular (zero spacing?)")
    return array, affine, {"format": format_name, **extra}


def _read_file(path: pathlib.Path, format_name: str) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Reads a NIfTI file with nibabel, MetaImage / NRRD with ITK, through MONAI's readers."""
    if format_name == "nifti":
        from monai.data.image_reader import NibabelReader

        reader: Any = NibabelReader()
    else:
        from monai.data.image_reader import ITKReader
        from monai.utils.module import optional_import

        _, has_itk = optional_import("itk", allow_namespace_pkg=True)
        if not has_itk:
            raise ScanReadError(path, f"reading {format_name} needs ITK: pip install itk-io")
        reader = ITKReader()
    array, meta = reader.get_data(reader.read(str(path)))
    return np.asarray(array), meta["affine"], {}


def _as_3d(array: np.ndarray, path: PathLike) -> np.ndarray:
    """Returns `array` as 3D, dropping trailing singleton axes; rejects 2D and 4D data."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim > 3:
        raise ScanReadError(
            path,
            f"is {array.ndim}D with shape {tuple(array.shape)} (a time series or multi-channel "
            "image); a single 3D volume is expected",
        )
    if array.ndim < 3 or min(array.shape) < 2:
        raise ScanReadError(
            path,
            f"is a 2D slice (shape {tuple(array.shape)}); a 3D volume with at least 2 voxels "
            "along each axis is expected",
        )
    return array


def _read_dicom_series(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Reads one DICOM series folder with MONAI's PydicomReader, in geometric slice order."""
    entries = sorted(folder.iterdir())
    subfolders = [entry.name for entry in entries if entry.is_dir()]
    if subfolders:
        raise ScanReadError(
            folder,
            f"holds subfolders ({', '.join(subfolders[:5])}); pass a folder with the slice files "
            "of one DICOM series",
        )
    from monai.data.image_reader import PydicomReader

    slice_files = [entry for entry in entries if _io.is_dicom_file(entry)]
    if not slice_files:
        raise ScanReadError(folder, f"holds no DICOM files ({len(entries)} other files)")
    if len(slice_files) == 1:
        raise ScanReadError(
            folder, "holds a single DICOM slice (a 2D image); a 3D series needs several slices"
        )
    # fname_regex=None: MONAI keeps only files pydicom recognises as DICOM (skips .DS_Store etc.)
    reader = PydicomReader(fname_regex=None)  # type: ignore[arg-type]  # documented
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets = reader.read(str(folder))
    unreadable = [
        str(warning.message).strip() for warning in caught if "Failed" in str(warning.message)
    ]
    if unreadable:
        raise ScanReadError(folder, f"has unreadable DICOM files: {'; '.join(unreadable[:3])}")
    filenames = [pathlib.Path(name).name for name in reader.filenames[0]]
    normal, positions = _check_series_geometry(folder, datasets, filenames)
    # MONAI stacks a series in InstanceNumber order and takes the slice axis from the first and
    # last ImagePositionPatient. Numbering the in-memory slices by their position along the
    # slice normal makes that order geometric, whatever the scanner or anonymiser numbered.
    for rank, index in enumerate(np.argsort(positions)):
        datasets[index].InstanceNumber = rank + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        array, meta = reader.get_data(datasets)
    first = datasets[0]
    extra = {
        "modality": str(getattr(first, "Modality", "")),
        "series_instance_uid": str(getattr(first, "SeriesInstanceUID", "")),
        "slice_normal": normal.tolist(),
    }
    return np.asarray(array, dtype=np.float32), meta["affine"], extra


def _check_series_geometry(
    folder: pathlib.Path, datasets: list[Any], filenames: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Checks that the slices form one regular 3D grid; returns the normal and slice positions.

    Raises:
        ScanReadError: For mixed series, missing geometry tags, differing orientation, pixel
            spacing or size, duplicate positions, uneven slice steps (missing slices) or tilt.
    """
    required = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows")
    for dataset, name in zip(datasets, filenames, strict=True):
        missing = [tag for tag in required if tag not in dataset]
        if missing:
            raise ScanReadError(folder, f"slice {name} lacks {', '.join(missing)}")
        if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1:
            raise ScanReadError(
                folder,
                f"slice {name} is a multi-frame DICOM object; only one slice per file is read",
            )
    series = sorted({str(getattr(dataset, "SeriesInstanceUID", "")) for dataset in datasets})
    if len(series) > 1:
        raise ScanReadError(
            folder, f"mixes {len(series)} DICOM series ({', '.join(series[:3])}); pass one series"
        )
    first, first_name = datasets[0], filenames[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    pixel_spacing = np.asarray(first.PixelSpacing, dtype=np.float64)
    size = (int(first.Rows), int(first.Columns))
    for dataset, name in zip(datasets[1:], filenames[1:], strict=True):
        if not np.allclose(dataset.ImageOrientationPatient, orientation, atol=1e-4):
            raise ScanReadError(
                folder, f"slices {first_name} and {name} differ in ImageOrientationPatient"
            )
        if not np.allclose(dataset.PixelSpacing, pixel_spacing, rtol=1e-4):
            raise ScanReadError(folder, f"slices {first_name} and {name} differ in PixelSpacing")
        if (int(dataset.Rows), int(dataset.Columns)) != size:
            raise ScanReadError(folder, f"slices {first_name} and {name} differ in size")
    normal = np.cross(orientation[:3], orientation[3:])
    corners = np.asarray([dataset.ImagePositionPatient for dataset in datasets], dtype=np.float64)
    positions = corners @ normal
    order = np.argsort(positions)
    steps = np.diff(positions[order])
    if np.min(steps) < 1e-3:
        duplicate = int(np.argmin(steps))
        raise ScanReadError(
            folder,
            f"slices {filenames[order[duplicate]]} and {filenames[order[duplicate + 1]]} share "
            "one position (duplicate slices or two acquisitions)",
        )
    median_step = float(np.median(steps))
    uneven = np.abs(steps - median_step) > _SLICE_SPACING_TOLERANCE * median_step
    if uneven.any():
        gap = int(np.argmax(uneven))
        raise ScanReadError(
            folder,
            f"slice steps are uneven ({steps[gap]:.3f} mm between {filenames[order[gap]]} and "
            f"{filenames[order[gap + 1]]}, {median_step:.3f} mm elsewhere): missing slices?",
        )
    in_plane = (corners[order] - corners[order[0]]) - np.outer(
        positions[order] - positions[order[0]], normal
    )
    if np.abs(in_plane).max() > GRID_TOLERANCE_VOXELS * float(pixel_spacing.min()):
        raise ScanReadError(
            folder, "slices are not stacked along their normal (gantry tilt); not supported"
        )
    return normal, positions


def _resample_onto_reference(
    labels: np.ndarray,
    affine: np.ndarray,
    reference_affine: np.ndarray,
    reference_shape: tuple[int, ...],
    path: PathLike,
    reference: MetaTensor,
) -> np.ndarray:
    """Permutes / flips `labels` into the reference's voxel layout when both grids coincide.

    Raises:
        ScanReadError: When the label grid is not the reference's grid up to axis order / flips.
    """
    reference_name = reference.meta.get("filename_or_obj", "the reference scan")
    mapping = np.linalg.inv(reference_affine) @ affine  # label voxel -> reference voxel
    permutation = np.rint(mapping[:3, :3])
    is_signed_permutation = np.abs(permutation).sum(axis=0).tolist() == [1, 1, 1] and np.abs(
        permutation
    ).sum(axis=1).tolist() == [1, 1, 1]
    shape = np.asarray(labels.shape)
    corners = np.array(np.meshgrid(*[[0, size - 1] for size in shape], indexing="ij")).reshape(
        3, -1
    )
    if is_signed_permutation:
        offset = np.rint(mapping[:3, 3])
        mapped = mapping[:3, :3] @ corners + mapping[:3, 3:4]
        snapped = permutation @ corners + offset[:, None]
        deviation = float(np.abs(mapped - snapped).max())
        low, high = snapped.min(axis=1), snapped.max(axis=1)
        covers = np.array_equal(low, np.zeros(3)) and np.array_equal(
            high, np.asarray(reference_shape) - 1
        )
        if deviation <= GRID_TOLERANCE_VOXELS and covers:
            source_axes = [int(np.flatnonzero(permutation[axis])[0]) for axis in range(3)]
            flips = [axis for axis in range(3) if permutation[axis, source_axes[axis]] < 0]
            return np.ascontiguousarray(
                np.flip(np.transpose(labels, source_axes), axis=tuple(flips))
            )
    raise ScanReadError(
        path,
        f"label grid (shape {tuple(labels.shape)}, spacing "
        f"{np.round(np.linalg.norm(affine[:3, :3], axis=0), 4).tolist()}) does not lie on the "
        f"voxel grid of {reference_name} (shape {reference_shape}, spacing "
        f"{np.round(np.linalg.norm(reference_affine[:3, :3], axis=0), 4).tolist()})",
    )


def _affine_array(tensor: MetaTensor) -> np.ndarray:
    """Returns a MetaTensor's affine as a float64 numpy array."""
    affine = tensor.affine
    return np.asarray(
        affine.detach().cpu().numpy() if hasattr(affine, "detach") else affine, dtype=np.float64
    )


def to_meta_tensor(
    array: np.ndarray, affine: np.ndarray, path: PathLike, extra: dict[str, Any] | None = None
) -> MetaTensor:
    """Wraps a 3D array as a channel-first MetaTensor with the meta MONAI's transforms read.

    For readers of formats MONAI does not know (the CC-CCII slice folders), so that their scans
    carry the same meta as every other scan.
    """
    import torch
    from monai.data.meta_tensor import MetaTensor
    from monai.utils.enums import SpaceKeys

    extra = dict(extra or {})

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    meta = {
        "filename_or_obj": str(path),
        "spatial_shape": np.asarray(array.shape),
        "spacing": tuple(float(value) for value in spacing),
        "original_affine": extra.pop("original_affine", affine),
        # The channel axis is already first: EnsureChannelFirst leaves it alone.
        "original_channel_dim": 0,
        "space": SpaceKeys.RAS,
        **extra,
    }
    return MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array)[None]),
        affine=torch.as_tensor(affine, dtype=torch.float64),
        meta=meta,
    )
