"""The shared layout of the Medical Segmentation Decathlon tasks (Task03, 06, 07, 08, 09, 10)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

from monai.apps.datasets import DecathlonDataset

from eva_coralbay.data.adapters import base, decathlon_format, download
from eva_coralbay.data.adapters.validation import Problem

MSD_HOMEPAGE = "http://medicaldecathlon.com/"
MSD_LICENSE = "CC BY-SA 4.0 (as stated in every task's dataset.json)"


def msd_resource(task: str) -> download.Resource:
    """The task's tar archive on MONAI's mirror, with the MD5 MONAI's DecathlonDataset checks."""
    return download.Resource(
        url=DecathlonDataset.resource[task], filename=f"{task}.tar", md5=DecathlonDataset.md5[task]
    )


def manual_steps(task: str) -> str:
    """The manual download steps of a task."""
    resource = msd_resource(task)
    return f"""
Download {task}.tar from {MSD_HOMEPAGE} (Google Drive) or from MONAI's mirror
  {resource.url}   (MD5 {resource.md5})
and unpack it into ROOT:  tar -xf {task}.tar -C ROOT
so that ROOT/{task}/dataset.json and ROOT/{task}/imagesTr/ exist.
"""


class MSDAdapter(base.SegmentationAdapter):
    """One Decathlon task as distributed: `TaskNN_Name/{dataset.json, imagesTr, labelsTr}`.

    `root` may be the task folder itself or the folder holding it. The nnU-Net v2 conversion
    (`DatasetNNN_Name/imagesTr/name_001_0000.nii.gz`, as in VoCo's Hugging Face mirror that eva
    downloads) is accepted too. macOS "._" files that the archives carry are ignored. Training
    cases are those listed in dataset.json; the validation ones are a fixed list of ids.
    """

    msd_task: ClassVar[str]
    """The folder name of the task, e.g. "Task09_Spleen"."""

    nnunet_task: ClassVar[str]
    """The folder name of the nnU-Net v2 conversion, e.g. "Dataset009_Spleen"."""

    case_format: ClassVar[str]
    """How a case id is spelt from its number, e.g. "spleen_{}" or "lung_{:03d}"."""

    val_ids: ClassVar[frozenset[int]]
    """Numbers of the validation cases."""

    def layout(self) -> str:
        """The native layout."""
        return f"{self.msd_task}/{{dataset.json, imagesTr/, labelsTr/, imagesTs/}}"

    def task_dir(self) -> Path:
        """The task folder: `root` itself or its `TaskNN_Name` / `DatasetNNN_Name` child."""
        for candidate in (self.root / self.msd_task, self.root / self.nnunet_task):
            if candidate.is_dir():
                return candidate
        return self.root

    def catalogue(self) -> list[base.Case]:
        """The labelled cases listed in dataset.json (or found in labelsTr), plus the val ids."""
        task_dir = self.task_dir()
        numbers = set(self._listed_numbers(task_dir)) | set(self.val_ids)
        cases = []
        for number in sorted(numbers):
            case_id = self.case_format.format(number)
            image = task_dir / "imagesTr" / f"{case_id}.nii.gz"
            if not image.exists() and (task_dir / "imagesTr" / f"{case_id}_0000.nii.gz").exists():
                image = task_dir / "imagesTr" / f"{case_id}_0000.nii.gz"
            label = task_dir / "labelsTr" / f"{case_id}.nii.gz"
            split = "val" if number in self.val_ids else "train"
            cases.append(base.Case(case_id, split, image, (base.LabelPart(label),)))
        return cases

    def check_metadata(self) -> list[Problem]:
        """Checks that dataset.json exists, parses and has as many labels as the class map."""
        path = self.task_dir() / "dataset.json"
        if not path.is_file():
            return [Problem(str(path), "missing: every Decathlon task ships a dataset.json")]
        try:
            labels = decathlon_format.label_names(json.loads(path.read_text()), path)
        except (ValueError, KeyError, TypeError) as error:
            return [Problem(str(path), f"not a Decathlon dataset.json ({error})")]
        if len(labels) != len(self.native_classes):
            return [
                Problem(
                    str(path),
                    f"declares {len(labels)} labels {labels}, {type(self).__name__} expects "
                    f"{len(self.native_classes)} {list(self.native_classes)}",
                )
            ]
        return []

    def _listed_numbers(self, task_dir: Path) -> list[int]:
        path = task_dir / "dataset.json"
        names: list[str] = []
        if path.is_file():
            try:
                names = [
                    Path(entry["label"]).name for entry in json.loads(path.read_text())["training"]
                ]
            except (ValueError, KeyError, TypeError):
                names = []  # check_metadata reports the broken file
        if not names:
            names = [p.name for p in base.list_volumes(task_dir / "labelsTr")]
        numbers = []
        for name in names:
            match = re.search(r"(\d+)(?:_0000)?\.nii(?:\.gz)?$", name)
            if match and not name.startswith("."):
                numbers.append(int(match.group(1)))
        return numbers
