"""AMOS22: Abdominal Multi-Organ Segmentation, the CT part (15 organs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base

MAX_CT_ID = 500
"""AMOS numbers its CT scans 1..500 and its MRI scans from 501 up."""

_SPLIT_FOLDERS = {"train": "Tr", "val": "Va"}
_CASE = re.compile(r"^amos_(\d{4})\.nii\.gz$")


class AMOS22CT(base.SegmentationAdapter):
    """AMOS22 CT scans with public labels: official 200 train / 100 val (ids <= 500).

    Native layout (amos22.zip): `amos22/imagesTr/amos_0001.nii.gz` + `labelsTr/amos_0001.nii.gz`,
    `imagesVa/` + `labelsVa/`, `imagesTs/` and `dataset.json`. The MRI scans (ids > 500) in the
    same folders are skipped. `root` may be the `amos22` folder or its parent.
    """

    task_id: ClassVar[str] = "amos22_ct"
    manual_download: ClassVar[str] = """
Download amos22.zip from https://zenodo.org/records/7262581 (check the MD5 shown there) and
unzip it into ROOT, so that ROOT/amos22/imagesTr/amos_0001.nii.gz exists.
"""

    def layout(self) -> str:
        """The native layout."""
        return "[amos22/]{imagesTr,labelsTr,imagesVa,labelsVa}/amos_NNNN.nii.gz (CT: NNNN <= 500)"

    def catalogue(self) -> list[base.Case]:
        """The CT images found in the train and val folders, paired with their label files."""
        top = self._top()
        cases = []
        for split, suffix in _SPLIT_FOLDERS.items():
            for image in base.list_volumes(top / f"images{suffix}"):
                match = _CASE.match(image.name)
                if match is None or int(match.group(1)) > MAX_CT_ID:
                    continue
                label = top / f"labels{suffix}" / image.name
                cases.append(
                    base.Case(
                        base.strip_suffixes(image.name), split, image, (base.LabelPart(label),)
                    )
                )
        return cases

    def _top(self) -> Path:
        nested = self.root / "amos22"
        return nested if nested.is_dir() else self.root
