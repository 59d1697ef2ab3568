"""KiTS23: the 2023 Kidney and Kidney Tumor Segmentation Challenge."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base

VAL_IDS = frozenset(
    {5, 9, 15, 16, 25, 29, 31, 32, 48, 50, 53, 57, 60, 61, 65, 67, 68, 76, 81, 96, 100, 104, 108,
     113}
)  # fmt: skip
"""The 24 validation cases of VoCo's dataset_kits.json (eva's KiTS23 validation split too)."""

_CASE = re.compile(r"^case_(\d{5})$")


class KiTS23(base.SegmentationAdapter):
    """KiTS23 training set: 489 CT scans with kidney, tumour and cyst labels; 465 train / 24 val.

    Native layout (the kits23 repository's `dataset/` folder after `kits23_download_data`):
    `case_00000/imaging.nii.gz` + `case_00000/segmentation.nii.gz`, cases 0-299 and 400-588.
    `root` may be that `dataset/` folder or the repository folder holding it.
    """

    task_id: ClassVar[str] = "kits23"
    manual_download: ClassVar[str] = """
git clone https://github.com/neheller/kits23 && cd kits23 && pip install -e .
kits23_download_data        # fills kits23/dataset/case_XXXXX/imaging.nii.gz
then use ROOT=kits23/dataset (the segmentations are already in the repository).
"""

    def layout(self) -> str:
        """The native layout."""
        return "[dataset/]case_XXXXX/{imaging.nii.gz, segmentation.nii.gz}"

    def catalogue(self) -> list[base.Case]:
        """The case folders found, plus the validation ids even if missing."""
        dataset_dir = self._dataset_dir()
        numbers = {
            int(match.group(1))
            for path in dataset_dir.glob("case_*")
            if path.is_dir() and (match := _CASE.match(path.name))
        }
        cases = []
        for number in sorted(numbers | VAL_IDS):
            folder = dataset_dir / f"case_{number:05d}"
            cases.append(
                base.Case(
                    case_id=folder.name,
                    split="val" if number in VAL_IDS else "train",
                    image=folder / "imaging.nii.gz",
                    labels=(base.LabelPart(folder / "segmentation.nii.gz"),),
                )
            )
        return cases

    def _dataset_dir(self) -> Path:
        nested = self.root / "dataset"
        return nested if nested.is_dir() and not any(self.root.glob("case_*")) else self.root
