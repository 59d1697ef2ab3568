"""LiTS17: the Liver Tumor Segmentation Benchmark (MICCAI 2017)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base
from eva_coralbay.data.adapters.msd_task3_liver import LITS_VAL_IDS

_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


class LiTS17(base.SegmentationAdapter):
    """LiTS 2017 training set: 131 CT scans with liver and tumour labels; 108 train / 23 val.

    Native layout (as the challenge distributes it, any folder depth under `root`):
    `Training Batch 1/volume-0.nii` + `segmentation-0.nii` (cases 0-27) and
    `Training Batch 2/volume-28.nii` ... (cases 28-130); `.nii.gz` copies are accepted too.
    """

    task_id: ClassVar[str] = "lits17"
    manual_download: ClassVar[str] = """
Register for the LiTS challenge (https://competitions.codalab.org/competitions/17094) and download
"Training Batch 1" and "Training Batch 2" (also mirrored in the LiTS Google Drive folder
https://drive.google.com/drive/folders/0B0vscETPGI1-Q1h1WFdEM2FHSUE). Unzip both into ROOT, so
that ROOT/Training Batch 1/volume-0.nii and ROOT/Training Batch 2/volume-130.nii exist.
"""

    def layout(self) -> str:
        """The native layout."""
        return "**/volume-N.nii and segmentation-N.nii side by side (N = 0..130)"

    def catalogue(self) -> list[base.Case]:
        """The volumes found anywhere under `root`, plus the validation ids even if missing."""
        volumes: dict[int, Path] = {}
        for path in sorted(self.root.rglob("volume-*.nii*")):
            match = _VOLUME.match(path.name)
            if match:
                volumes.setdefault(int(match.group(1)), path)
        for number in LITS_VAL_IDS - volumes.keys():
            volumes[number] = self.root / f"volume-{number}.nii"
        cases = []
        for number in sorted(volumes):
            image = volumes[number]
            label_name = image.name.replace("volume-", "segmentation-", 1)
            cases.append(
                base.Case(
                    case_id=f"volume-{number}",
                    split="val" if number in LITS_VAL_IDS else "train",
                    image=image,
                    labels=(base.LabelPart(image.with_name(label_name)),),
                )
            )
        return cases
