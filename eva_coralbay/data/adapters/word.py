"""WORD: the Whole abdominal ORgan Dataset (16 organs)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base

_SPLIT_FOLDERS = {"train": "Tr", "val": "Val", "test": "Ts"}


class WORD(base.SegmentationAdapter):
    """WORD v0.1.0: 150 abdominal CT scans, 16 organs; official 100 train / 20 val / 30 test.

    Native layout (WORD-V0.1.0.zip): `WORD-V0.1.0/imagesTr/word_0001.nii.gz` with
    `labelsTr/word_0001.nii.gz`, and likewise `imagesVal`/`labelsVal` and `imagesTs`. The test
    labels were withheld at release ("unseen" in its dataset.json; eva's WORD expects 120
    labelled cases), so test cases are listed only where a `labelsTs` file exists. `root` may be
    the `WORD-V0.1.0` folder or the folder holding it.
    """

    task_id: ClassVar[str] = "word"
    split_names: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    manual_download: ClassVar[str] = """
Download WORD-V0.1.0.zip from the link in https://github.com/HiLab-git/WORD (Google Drive /
Baidu Pan). The zip is AES-encrypted: its password is published in eva's WORD dataset source
(eva/vision/data/datasets/segmentation/word.py). Unzip it into ROOT (7z x WORD-V0.1.0.zip, or
python -m pyzipper), so that ROOT/WORD-V0.1.0/imagesTr/word_0001.nii.gz exists.
"""

    def layout(self) -> str:
        """The native layout."""
        return "[WORD-V0.1.0/]{images,labels}{Tr,Val,Ts}/word_NNNN.nii.gz"

    def catalogue(self) -> list[base.Case]:
        """The images of each split folder with the same name in its label folder (test: if any)."""
        top = self._top()
        cases = []
        for split, suffix in _SPLIT_FOLDERS.items():
            for image in base.list_volumes(top / f"images{suffix}"):
                label = top / f"labels{suffix}" / image.name
                if split == "test" and not label.exists():
                    continue
                case_id = base.strip_suffixes(image.name)
                cases.append(base.Case(case_id, split, image, (base.LabelPart(label),)))
        return cases

    def _top(self) -> Path:
        nested = self.root / "WORD-V0.1.0"
        return nested if nested.is_dir() else self.root
