"""Axial CT DICOM series from a RAS volume, with the per-slice pixel layout a release would ship."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclasses.dataclass(frozen=True)
class AxialSlice:
    """One axial slice as DICOM stores it: pixels (rows, columns) and their geometry (LPS mm)."""

    pixels: npt.NDArray[np.generic]
    position: tuple[float, float, float]
    """ImagePositionPatient: the centre of the first transmitted pixel."""
    orientation: tuple[float, ...]
    """ImageOrientationPatient: the row direction (along a row, increasing column) then the
    column direction (down a column, increasing row)."""
    spacing: tuple[float, float]
    """PixelSpacing: (between rows, between columns)."""


def axial_slices(
    volume: npt.NDArray[np.generic],
    affine: npt.NDArray[np.floating],
    *,
    mirrored: bool = False,
) -> list[AxialSlice]:
    """Cuts a volume on an axis-aligned RAS grid into DICOM axial slices, inferior first.

    Args:
        volume: (x, y, z) array with x toward the patient's right, y anterior, z superior.
        affine: Its voxel-to-RAS affine (diagonal, positive).
        mirrored: Store the columns right-to-left instead of DICOM's usual patient-left-ward
            direction (row direction -x in LPS), as some scanners do.

    Raises:
        ValueError: For an affine that is not diagonal with positive spacings.
    """
    spacing = np.diag(affine)[:3]
    if not np.allclose(affine[:3, :3], np.diag(spacing)) or (spacing <= 0).any():
        raise ValueError(f"expected an axis-aligned RAS affine, got {affine.tolist()}")
    size_x, size_y, _ = volume.shape
    slices = []
    for z in range(volume.shape[2]):
        # LPS x = -RAS x, LPS y = -RAS y. Row direction +x(LPS) = toward the patient's left,
        # i.e. decreasing RAS x: the first column is the voxel with the largest x.
        plane = volume[:, :, z]  # (x, y)
        first_x = 0 if mirrored else size_x - 1
        columns = plane if mirrored else plane[::-1]
        pixels = columns[:, ::-1].T  # rows run posterior-ward: decreasing RAS y
        corner_ras = affine @ np.array([first_x, size_y - 1, z, 1.0])
        row_direction = (-1.0, 0.0, 0.0) if mirrored else (1.0, 0.0, 0.0)
        slices.append(
            AxialSlice(
                pixels=np.ascontiguousarray(pixels),
                position=(-float(corner_ras[0]), -float(corner_ras[1]), float(corner_ras[2])),
                orientation=(*row_direction, 0.0, 1.0, 0.0),
                spacing=(float(spacing[1]), float(spacing[0])),
            )
        )
    return slices


def write_series(
    folder: Path,
    slices: Sequence[AxialSlice],
    names: Sequence[str],
    *,
    slice_thickness: float,
) -> list[Path]:
    """Writes int16 HU slices as one CT series, `names[i]` for `slices[i]`.

    Returns:
        The written files, in the order of `slices`.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for number, (axial, name) in enumerate(zip(slices, names, strict=True), start=1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = pydicom.Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.Modality = "CT"
        dataset.PatientID = folder.parent.name or "phantom"
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        dataset.FrameOfReferenceUID = frame
        dataset.InstanceNumber = number
        dataset.ImagePositionPatient = [f"{value:.4f}" for value in axial.position]
        dataset.ImageOrientationPatient = [f"{value:.1f}" for value in axial.orientation]
        dataset.PixelSpacing = [f"{value:.4f}" for value in axial.spacing]
        dataset.SliceThickness = f"{slice_thickness:.4f}"
        pixels = np.asarray(axial.pixels).astype(np.int16)
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
        dataset.PixelRepresentation = 1
        dataset.RescaleIntercept, dataset.RescaleSlope = "0", "1"
        dataset.PixelData = pixels.tobytes()
        path = folder / name
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
