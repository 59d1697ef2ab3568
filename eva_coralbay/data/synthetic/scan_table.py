"""A scan table and its NIfTI scans: small phantoms whose class is a shape or an intensity."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import numpy.typing as npt

AIR_HU = -1000.0
"""The background of every phantom."""

SIZE = 24
"""Voxels along each axis of a phantom."""

SPACING_MM = 4.0
"""Isotropic voxel size of a phantom (96 mm across: one 64^3 window on a 4 mm grid)."""

Shape = Literal["cube", "ball", "rod"]


@dataclasses.dataclass(frozen=True)
class PhantomScan:
    """One scan to write and list: its class, patient, split and what it shows."""

    label: str
    patient_id: str
    split: str
    shape: Shape
    """The object in the scan: a cube, a ball, or a rod along the third axis."""
    hu: float
    """The object's intensity."""
    offset: int = 0
    """How many voxels the object sits off centre along each axis (shifts, never resizes it)."""

    @property
    def path(self) -> str:
        """Where the scan is written, relative to the table's folder."""
        return f"scans/{self.patient_id}/{self.label}.nii.gz"


def _patients(
    shapes: Sequence[tuple[str, Shape, float]], train: int, val: int
) -> tuple[PhantomScan, ...]:
    scans = []
    for label, shape, hu in shapes:
        for split, count in (("train", train), ("val", val)):
            for index in range(count):
                scans.append(
                    PhantomScan(label, f"{label}-{split}-{index}", split, shape, hu, offset=index)
                )
    return tuple(scans)


SHAPE_SCANS = _patients(
    [("cube", "cube", 40.0), ("ball", "ball", 40.0), ("rod", "rod", 40.0)], train=2, val=1
)
"""Three classes told apart by shape alone (soft tissue in air): two training patients and one
validation patient each."""

INTENSITY_SCANS = _patients([("fat", "ball", 0.0), ("dense", "ball", 100.0)], train=3, val=2)
"""Two classes told apart by intensity alone: the same ball at 0 HU or 100 HU, 100 HU apart (a
window centre shift of 100 HU makes one look like the other)."""


def phantom(scan: PhantomScan) -> npt.NDArray[np.float32]:
    """The scan's voxels in HU: air, and the object at `scan.hu`, `scan.offset` off centre."""
    voxels = np.full((SIZE, SIZE, SIZE), AIR_HU, dtype=np.float32)
    centre = SIZE // 2 + scan.offset
    axes = np.indices(voxels.shape) - centre
    if scan.shape == "cube":
        inside = np.all(np.abs(axes) <= 4, axis=0)
    elif scan.shape == "ball":
        inside = np.sum(axes.astype(np.float64) ** 2, axis=0) <= 5.5**2
    else:
        inside = (np.abs(axes[0]) <= 2) & (np.abs(axes[1]) <= 2) & (np.abs(axes[2]) <= 9)
    voxels[inside] = scan.hu
    return voxels


def write_scan_table(
    root: Path, scans: Sequence[PhantomScan] = SHAPE_SCANS, table_name: str = "scans.csv"
) -> Path:
    """Writes each scan as a RAS NIfTI at `SPACING_MM` and the table listing them.

    Args:
        root: The table's folder (created).
        scans: What to write.
        table_name: `scans.csv`, or a `.parquet` name for a parquet table.

    Returns:
        The table.
    """
    root.mkdir(parents=True, exist_ok=True)
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    for scan in scans:
        path = root / scan.path
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(phantom(scan), affine), path)
    rows = [
        {"path": scan.path, "label": scan.label, "patient_id": scan.patient_id, "split": scan.split}
        for scan in scans
    ]
    table = root / table_name
    if table.suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(rows, columns=["path", "label", "patient_id", "split"]).to_parquet(table)
        return table
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "patient_id", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return table
