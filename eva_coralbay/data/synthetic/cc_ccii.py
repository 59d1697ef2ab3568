"""CC-CCII in its two layouts: the release's slice-image folders and eva's / VoCo's .npy + folds."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eva_coralbay import tasks

CLASS_FOLDERS = tasks.get_benchmark("cc-ccii").native_classes
"""The release's class folders, in the order of the fold tables' `target` (0, 1, 2)."""

GREY_WINDOW_HU = (-1200.0, 600.0)
"""The lung window the synthetic slices are exported with (grey 0 .. 255); the real release's
window is not documented."""

MARKER_HU = 600.0
"""A bright 3x3 pixel block at the first slice's top-left corner (anterior, patient's right,
superior by the release's assumed slice order): it shows where each end of the scan lands."""

FOLD_COLUMNS = (
    "zip_file", "target", "label", "patient_id", "scan_id", "n_slice", "scan_count",
    "all_scan_ids",
)  # fmt: skip
"""The columns of VoCo's CC_CCII_fold<k>_{train,valid}.csv (which eva's CC_CCII reads)."""

RELEASE_COLUMNS = ("zip_file", "label", "patient_id", "scan_id", "n_slice")
"""The columns of the release's unzip_filenames.csv, as third-party readers of it use them."""


@dataclasses.dataclass(frozen=True)
class SyntheticScan:
    """One scan to write: its class, ids, split and size."""

    label: str
    """A class folder name: "Normal", "CP" or "NCP"."""
    patient_id: int
    scan_id: int
    split: str
    """"train" or "val" (the fold tables' train / valid)."""
    slices: int = 12
    size: int = 48
    """Pixels per side of each slice."""

    @property
    def target(self) -> int:
        """The class index of the fold tables."""
        return CLASS_FOLDERS.index(self.label)


DEFAULT_SCANS = (
    SyntheticScan("Normal", 101, 1001, "train"),
    SyntheticScan("Normal", 102, 1002, "val", slices=10),
    SyntheticScan("CP", 201, 2001, "train"),
    SyntheticScan("CP", 201, 2002, "train", slices=14),
    SyntheticScan("CP", 202, 2003, "val"),
    SyntheticScan("NCP", 301, 3001, "train", slices=11),
    SyntheticScan("NCP", 302, 3002, "val"),
)
"""Six patients, two per class, one with two scans; each patient in one split."""


def chest_slices(scan: SyntheticScan) -> npt.NDArray[np.uint8]:
    """A scan's slices as 8-bit grey images, `[slice, row, column]`, top slice first.

    Axial slices as radiology displays them: rows run anterior to posterior, columns from the
    patient's right to the left. A body ellipse of soft tissue holds two lungs of air; common
    pneumonia adds one dense consolidation to the right lung, the novel coronavirus peripheral
    ground-glass blobs to both lungs.
    """
    rng = np.random.default_rng(scan.scan_id)
    rows, columns = np.mgrid[0 : scan.size, 0 : scan.size] / (scan.size - 1) * 2 - 1
    hu = np.full((scan.slices, scan.size, scan.size), -1000.0)
    for index in range(scan.slices):
        height = index / max(scan.slices - 1, 1)  # 0 at the top slice
        plane = hu[index]
        plane[(columns / 0.9) ** 2 + (rows / 0.7) ** 2 <= 1] = 40.0
        lung_size = 0.2 + 0.15 * np.sin(np.pi * min(0.15 + height, 1.0))
        for side in (-1, 1):  # the patient's right lung is on the image's left (-1)
            lung = ((columns - side * 0.42) / lung_size) ** 2 + (rows / (lung_size * 1.6)) ** 2
            plane[lung <= 1] = -850.0
        if scan.label == "CP" and 0.3 <= height <= 0.7:
            plane[((columns + 0.42) / 0.12) ** 2 + ((rows - 0.1) / 0.18) ** 2 <= 1] = 20.0
        if scan.label == "NCP":
            for side in (-1, 1):
                centre = rng.uniform(0.1, 0.3, size=2) * np.array([side, 1.0])
                blob = ((columns - side * 0.42 - centre[0]) / 0.08) ** 2 + (
                    (rows - centre[1]) / 0.08
                ) ** 2
                plane[blob <= 1] = -550.0
    hu[0, :3, :3] = MARKER_HU
    hu += rng.normal(0.0, 15.0, size=hu.shape)
    low, high = GREY_WINDOW_HU
    return np.clip(np.rint((hu - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def scan_folder(root: Path, scan: SyntheticScan) -> Path:
    """Where the release keeps a scan's slice images."""
    return root / scan.label / str(scan.patient_id) / str(scan.scan_id)


def npy_path(root: Path, scan: SyntheticScan) -> Path:
    """Where eva's and VoCo's layout keeps a scan's volume."""
    return root / "CC-CCII_public" / "data" / f"p{scan.patient_id}-s{scan.scan_id}.npy"


def write_slice_release(
    root: Path,
    scans: Sequence[SyntheticScan] = DEFAULT_SCANS,
    *,
    suffix: str = ".png",
    release_table: bool = True,
    fold_tables: bool = False,
) -> Path:
    """The public release's layout: `<class>/<patient>/<scan>/<n>.png`, one image per slice.

    Slice files are named by their number without zero padding (1.png ... 12.png), so listing
    them by name gives the wrong order: the reader must sort by number.

    Args:
        root: The folder to write the release into.
        scans: The scans.
        suffix: ".png" or ".jpg" (JPEG is lossy: grey values change by a few levels).
        release_table: Also write unzip_filenames.csv, the release's list of scans.
        fold_tables: Also write fold 0's CC_CCII_fold0_{train,valid}.csv from the scans' splits.
    """
    from PIL import Image

    for scan in scans:
        folder = scan_folder(root, scan)
        folder.mkdir(parents=True, exist_ok=True)
        for number, pixels in enumerate(chest_slices(scan), start=1):
            Image.fromarray(pixels, mode="L").save(folder / f"{number}{suffix}")
    if release_table:
        write_release_table(root, scans)
    if fold_tables:
        write_fold_tables(root, scans)
    return root


def write_npy_release(root: Path, scans: Sequence[SyntheticScan] = DEFAULT_SCANS) -> Path:
    """The layout eva and VoCo read: `CC-CCII_public/data/p<patient>-s<scan>.npy` + fold tables.

    Each volume is uint8 `[slice, row, column]` (VoCo's loader divides by 255 and crops rows and
    columns), the top slice first.
    """
    for scan in scans:
        path = npy_path(root, scan)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, chest_slices(scan))
    write_fold_tables(root, scans)
    return root


def write_fold_tables(root: Path, scans: Sequence[SyntheticScan], fold: int = 0) -> list[Path]:
    """CC_CCII_fold<fold>_train.csv and _valid.csv with VoCo's columns, from the scans' splits."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, part in (("train", "train"), ("val", "valid")):
        rows = []
        for scan in scans:
            if scan.split != split:
                continue
            patient_scans = [s.scan_id for s in scans if s.patient_id == scan.patient_id]
            rows.append(
                {
                    "zip_file": f"{scan.label}-1.zip",
                    "target": scan.target,
                    "label": scan.label,
                    "patient_id": scan.patient_id,
                    "scan_id": scan.scan_id,
                    "n_slice": scan.slices,
                    "scan_count": len(patient_scans),
                    "all_scan_ids": str(patient_scans),
                }
            )
        path = root / f"CC_CCII_fold{fold}_{part}.csv"
        _write_csv(path, FOLD_COLUMNS, rows)
        paths.append(path)
    return paths


def write_release_table(root: Path, scans: Sequence[SyntheticScan]) -> Path:
    """unzip_filenames.csv: one row per scan of the release with its slice count."""
    rows = [
        {
            "zip_file": f"{'COVID19' if scan.label == 'NCP' else scan.label}-1.zip",
            "label": scan.label,
            "patient_id": scan.patient_id,
            "scan_id": scan.scan_id,
            "n_slice": scan.slices,
        }
        for scan in scans
    ]
    path = root / "unzip_filenames.csv"
    _write_csv(path, RELEASE_COLUMNS, rows)
    return path


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
