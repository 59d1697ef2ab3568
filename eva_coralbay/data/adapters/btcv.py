"""BTCV: Multi-Atlas Labeling Beyond the Cranial Vault, abdomen (13 organs)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base

VAL_IDS = frozenset(range(35, 41))
"""img0035..img0040: the validation cases of VoCo's / MONAI's `dataset_0.json`."""

TRAIN_IDS = frozenset([*range(1, 11), *range(21, 35)])
"""img0001..0010 and img0021..0034: the training cases of the same file."""


class BTCV(base.SegmentationAdapter):
    """BTCV abdomen: 30 labelled CT scans, 13 organs; split 24 train / 6 val.

    Native layouts accepted under `root` (optionally inside a `BTCV/` folder, as eva's download
    leaves it): the Synapse release `RawData/Training/img/img0001.nii.gz` +
    `RawData/Training/label/label0001.nii.gz`, or the MONAI / VoCo one `imagesTr/img0001.nii.gz`
    + `labelsTr/label0001.nii.gz`.
    """

    task_id: ClassVar[str] = "btcv"
    manual_download: ClassVar[str] = """
Either (a) register at https://www.synapse.org/#!Synapse:syn3193805, download "Abdomen" ->
RawData.zip and unzip it so that ROOT/RawData/Training/img/img0001.nii.gz exists; or (b) with a
Hugging Face token that has accepted the dataset's terms:
  huggingface-cli download Luffy503/VoCo_Downstream BTCV.zip --repo-type dataset --local-dir ROOT
  cd ROOT && unzip BTCV.zip   # gives ROOT/BTCV/imagesTr/img0001.nii.gz, labelsTr/label0001.nii.gz
"""

    def layout(self) -> str:
        """The accepted layouts."""
        return "RawData/Training/{img,label}/ or [BTCV/]{imagesTr,labelsTr}/ with img0001.nii.gz"

    def catalogue(self) -> list[base.Case]:
        """The 30 labelled cases, wherever one of the native layouts puts them."""
        images_dir, labels_dir = self._folders()
        cases = []
        for number in sorted(TRAIN_IDS | VAL_IDS):
            cases.append(
                base.Case(
                    case_id=f"img{number:04d}",
                    split="val" if number in VAL_IDS else "train",
                    image=images_dir / f"img{number:04d}.nii.gz",
                    labels=(base.LabelPart(labels_dir / f"label{number:04d}.nii.gz"),),
                )
            )
        return cases

    def _folders(self) -> tuple[Path, Path]:
        for top in (self.root, self.root / "BTCV"):
            synapse = top / "RawData" / "Training"
            if (synapse / "img").is_dir():
                return synapse / "img", synapse / "label"
            if (top / "imagesTr").is_dir():
                return top / "imagesTr", top / "labelsTr"
        return (
            self.root / "RawData" / "Training" / "img",
            self.root / "RawData" / "Training" / "label",
        )
