"""CHAOS (CT): liver segmentation of 20 CT scans, a DICOM series and a PNG mask per slice."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from monai.data.meta_tensor import MetaTensor
from typing_extensions import override

from eva_coralbay import _io
from eva_coralbay.data.adapters import base
from eva_coralbay.data.adapters.validation import Problem

CASE_IDS = (1, 2, 5, 6, 8, 10, 14, 16, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)
"""The CT training cases of the CHAOS release (Train_Sets/CT/<id>)."""

VAL_IDS = frozenset(CASE_IDS[4::5])
"""Every fifth case in id order (8, 19, 25, 30): this project's fixed validation split."""

_NUMBER = re.compile(r"(\d+)")


def _natural_key(path: Path) -> tuple[Any, ...]:
    """Sorts i0009 before i0010 and liver_GT_9 before liver_GT_10 whatever the zero padding."""
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER.split(path.name))


class CHAOS(base.SegmentationAdapter):
    """CHAOS CT: 20 contrast-enhanced abdominal CT scans with liver masks; split 16 / 4.

    The release's layout under `root` (or its `CHAOS_Train_Sets/` or `Train_Sets/` folder):
    `Train_Sets/CT/<id>/DICOM_anon/*.dcm` and `Train_Sets/CT/<id>/Ground/*.png`, one PNG
    mask (liver > 0) per DICOM file. A mask belongs to the DICOM file at the same position in
    file-name order. Where each mask pixel lies is then worked out from that file's own
    geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing), not assumed: a
    series stored top-down, or with mirrored columns, still gets its masks on the right voxels.
    """

    task_id: ClassVar[str] = "chaos"
    manual_download: ClassVar[str] = """
Register at https://chaos.grand-challenge.org/, download CHAOS_Train_Sets.zip (Zenodo record
3431873) and unzip it into ROOT, so that ROOT/CHAOS_Train_Sets/Train_Sets/CT/1/DICOM_anon/ and
.../CT/1/Ground/ exist. Only the CT part is used.
"""

    def layout(self) -> str:
        """The accepted layout."""
        return "[CHAOS_Train_Sets/]Train_Sets/CT/<id>/{DICOM_anon/*.dcm, Ground/*.png}"

    def ct_dir(self) -> Path:
        """The folder holding one sub-folder per CT case."""
        for top in (self.root, self.root / "CHAOS_Train_Sets"):
            for candidate in (top / "Train_Sets" / "CT", top / "CT"):
                if candidate.is_dir():
                    return candidate
        return self.root / "CHAOS_Train_Sets" / "Train_Sets" / "CT"

    def catalogue(self) -> list[base.Case]:
        """The 20 CT cases: the DICOM folder as the image, the Ground folder as the label."""
        ct_dir = self.ct_dir()
        return [
            base.Case(
                case_id=f"ct_{number:02d}",
                split="val" if number in VAL_IDS else "train",
                image=ct_dir / str(number) / "DICOM_anon",
                labels=(base.LabelPart(ct_dir / str(number) / "Ground"),),
            )
            for number in CASE_IDS
        ]

    @override
    def read_label(self, case: base.Case, image: Any) -> Any:
        """Places each slice's PNG mask on the voxels its DICOM file's geometry says."""
        dicom_files, mask_files = self._pairs(case)
        label = _masks_on_grid(dicom_files, mask_files, image)
        meta = {key: value for key, value in image.meta.items() if key != "affine"}
        return MetaTensor(torch.from_numpy(label[None]), affine=image.affine, meta=meta)

    @override
    def problems(self) -> list[Problem]:
        """Missing folders, and masks whose count or size does not match their series."""
        problems = [*self._completeness_problems()]
        for case in self._cases:
            if self._cached_fresh(case):
                continue
            problems += self._case_problems(case)
        return problems

    def _pairs(self, case: base.Case) -> tuple[list[Path], list[Path]]:
        dicom_files = sorted(
            (path for path in case.image.iterdir() if _io.is_dicom_file(path)), key=_natural_key
        )
        ground = case.labels[0].path
        mask_files = sorted(ground.glob("*.png"), key=_natural_key)
        if len(mask_files) != len(dicom_files):
            raise ValueError(
                f"{ground}: {len(mask_files)} PNG masks for the {len(dicom_files)} DICOM files "
                f"of {case.image}; CHAOS ships one mask per slice"
            )
        return dicom_files, mask_files

    def _case_problems(self, case: base.Case) -> list[Problem]:
        import pydicom
        from PIL import Image

        ground = case.labels[0].path
        missing = [str(path) for path in (case.image, ground) if not path.is_dir()]
        if missing:
            return [Problem(path, "missing folder") for path in missing]
        try:
            dicom_files, mask_files = self._pairs(case)
        except ValueError as error:
            return [Problem(str(ground), str(error).split(": ", 1)[1])]
        if not dicom_files:
            return [Problem(str(case.image), "holds no DICOM files")]
        problems = []
        for dicom_file, mask_file in zip(dicom_files, mask_files, strict=True):
            header = pydicom.dcmread(dicom_file, stop_before_pixels=True)
            try:
                with Image.open(mask_file) as mask:
                    size = mask.size  # (width, height)
            except OSError as error:
                problems.append(Problem(str(mask_file), f"unreadable PNG ({error})"))
                continue
            if (size[1], size[0]) != (int(header.Rows), int(header.Columns)):
                problems.append(
                    Problem(
                        str(mask_file),
                        f"is {size[1]}x{size[0]} pixels, its slice {dicom_file.name} is "
                        f"{header.Rows}x{header.Columns}",
                    )
                )
        return problems


def _masks_on_grid(
    dicom_files: Sequence[Path], mask_files: Sequence[Path], image: Any
) -> npt.NDArray[np.uint8]:
    """The label map on `image`'s grid from per-file masks, by each file's DICOM geometry.

    Raises:
        ValueError: When a mask's size differs from its slice, or a mask pixel falls outside
            the image grid (the mask belongs to another series).
    """
    import pydicom
    from PIL import Image

    shape = tuple(int(side) for side in image.shape[1:])
    label = np.zeros(shape, dtype=np.uint8)
    # World (RAS, as MONAI's readers give it) -> voxel indices of the read image.
    to_voxel = np.linalg.inv(np.asarray(image.affine, dtype=np.float64))
    for dicom_file, mask_file in zip(dicom_files, mask_files, strict=True):
        header = pydicom.dcmread(dicom_file, stop_before_pixels=True)
        with Image.open(mask_file) as picture:
            mask = np.asarray(picture.convert("L")) > 0
        if mask.shape != (int(header.Rows), int(header.Columns)):
            raise ValueError(
                f"{mask_file}: {mask.shape[0]}x{mask.shape[1]} pixels, its slice "
                f"{dicom_file} is {header.Rows}x{header.Columns}"
            )
        rows, columns = np.nonzero(mask)
        if rows.size == 0:
            continue
        position = np.asarray(header.ImagePositionPatient, dtype=np.float64)
        orientation = np.asarray(header.ImageOrientationPatient, dtype=np.float64)
        row_spacing, column_spacing = (float(value) for value in header.PixelSpacing)
        # DICOM: pixel (r, c) lies at position + c·Δc·row direction + r·Δr·column direction.
        world = (
            position
            + np.outer(columns * column_spacing, orientation[:3])
            + np.outer(rows * row_spacing, orientation[3:])
        )
        world[:, :2] *= -1  # LPS -> RAS
        voxels = np.rint(world @ to_voxel[:3, :3].T + to_voxel[:3, 3]).astype(np.int64)
        outside = ((voxels < 0) | (voxels >= np.asarray(shape))).any(axis=1)
        if outside.any():
            raise ValueError(
                f"{mask_file}: {int(outside.sum())} mask pixels fall outside the scan read from "
                f"{dicom_file.parent}; the mask belongs to another series"
            )
        label[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = 1
    return label
