"""FLARE22: Fast and Low-resource semi-supervised Abdominal oRgan sEgmentation, labelled part."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base

VAL_IDS = frozenset(range(1, 11))
"""FLARE22_Tr_0001..0010: the validation cases of VoCo's FLARE22 dataset.json."""

ALL_IDS = frozenset(range(1, 51))
"""The 50 labelled training cases FLARE22_Tr_0001..0050."""


class FLARE22(base.SegmentationAdapter):
    """FLARE22 labelled training set: 50 abdominal CT scans, 13 organs; 40 train / 10 val.

    Native layout (FLARE22Train.zip): `FLARE22Train/images/FLARE22_Tr_0001_0000.nii.gz` and
    `FLARE22Train/labels/FLARE22_Tr_0001.nii.gz`. `root` may be `FLARE22Train` or its parent.
    """

    task_id: ClassVar[str] = "flare22"
    manual_download: ClassVar[str] = """
Download FLARE22Train.zip from https://zenodo.org/records/7860267 (check the MD5 shown there)
and unzip it into ROOT, so that ROOT/FLARE22Train/images/FLARE22_Tr_0001_0000.nii.gz exists.
"""

    def layout(self) -> str:
        """The native layout."""
        return "[FLARE22Train/]{images/FLARE22_Tr_NNNN_0000.nii.gz, labels/FLARE22_Tr_NNNN.nii.gz}"

    def catalogue(self) -> list[base.Case]:
        """The 50 labelled cases at their native paths."""
        top = self._top()
        return [
            base.Case(
                case_id=f"FLARE22_Tr_{number:04d}",
                split="val" if number in VAL_IDS else "train",
                image=top / "images" / f"FLARE22_Tr_{number:04d}_0000.nii.gz",
                labels=(base.LabelPart(top / "labels" / f"FLARE22_Tr_{number:04d}.nii.gz"),),
            )
            for number in sorted(ALL_IDS)
        ]

    def _top(self) -> Path:
        nested = self.root / "FLARE22Train"
        return nested if nested.is_dir() else self.root
