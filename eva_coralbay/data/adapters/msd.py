"""The Medical Segmentation Decathlon tasks (Task03, 06, 07, 08, 09, 10) as `DecathlonFormat`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from monai.apps.datasets import DecathlonDataset
from typing_extensions import override

from eva_coralbay.data.adapters import base, decathlon_format, download
from eva_coralbay.data.adapters.validation import Problem

_TASK_FOLDER = re.compile(r"^Task(\d+)_(\w+)$")


def msd_resource(task: str) -> download.Resource:
    """The task's tar archive on MONAI's mirror, with the MD5 MONAI's DecathlonDataset checks."""
    return download.Resource(
        url=DecathlonDataset.resource[task], filename=f"{task}.tar", md5=DecathlonDataset.md5[task]
    )


def manual_steps(task: str, homepage: str) -> str:
    """The manual download steps of a task."""
    resource = msd_resource(task)
    return f"""
Download {task}.tar from {homepage} (Google Drive) or from MONAI's mirror
  {resource.url}   (MD5 {resource.md5})
and unpack it into ROOT:  tar -xf {task}.tar -C ROOT
so that ROOT/{task}/dataset.json and ROOT/{task}/imagesTr/ exist.
"""


def nnunet_name(task: str) -> str:
    """nnU-Net v2's folder name of a task: "Task09_Spleen" -> "Dataset009_Spleen".

    Raises:
        ValueError: For a name that is not `TaskNN_Name`.
    """
    match = _TASK_FOLDER.match(task)
    if match is None:
        raise ValueError(f"{task!r} is not a Decathlon task folder name (TaskNN_Name)")
    return f"Dataset{int(match.group(1)):03d}_{match.group(2)}"


class MSDAdapter(decathlon_format.DecathlonFormat):
    """One Decathlon task as distributed: `TaskNN_Name/{dataset.json, imagesTr, labelsTr}`.

    The layout is read as `DecathlonFormat` reads any such dataset (dataset.json's `training`
    list, `_0000` image names, macOS "._" files ignored); a public benchmark fixes the rest.
    Its facts and class map are its record in `eva_coralbay.tasks` (dataset.json is checked
    against the class map by `validate`), its validation cases a fixed list of ids, and its
    archive is MONAI's copy (`resources`, `manual_download`, derived from `msd_task`).

    `root` may be the task folder itself or the folder holding it. The nnU-Net v2 conversion
    (`DatasetNNN_Name/imagesTr/name_001_0000.nii.gz`, as in VoCo's Hugging Face mirror that eva
    downloads) is accepted too.
    """

    msd_task: ClassVar[str]
    """The folder name of the task, e.g. "Task09_Spleen"."""

    nnunet_task: ClassVar[str]
    """The folder name of the nnU-Net v2 conversion, e.g. "Dataset009_Spleen" (derived)."""

    case_format: ClassVar[str]
    """How a case id is spelt from its number, e.g. "spleen_{}" or "lung_{:03d}"."""

    val_ids: ClassVar[frozenset[int]]
    """Numbers of the validation cases."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Derives a task's nnU-Net folder, archive and manual steps from its `msd_task`."""
        super().__init_subclass__(**kwargs)
        task = cls.__dict__.get("msd_task")
        if task is None:  # a subclass of a task's adapter inherits the task's
            return
        derived = {
            "nnunet_task": nnunet_name(task),
            "resources": (msd_resource(task),),
            "manual_download": manual_steps(task, cls.homepage),  # the record's homepage
        }
        for name, value in derived.items():
            if name not in cls.__dict__:  # what a task's class body states wins
                setattr(cls, name, value)

    def __init__(
        self,
        root: str,
        split: str | None = None,
        transforms: Callable | None = None,
        profile: base.ProfileLike = "radiology/coralbay",
        cache: str | None = None,
        use_cache: bool = True,
        download: bool = False,
        allow_incomplete: bool = False,
        train_cases: int | str | None = None,
    ) -> None:
        """Initializes the adapter; the data may be absent until `prepare_data` downloads it.

        Args:
            root: The task folder, or the folder holding it (see `layout`).
            split: "train", "val", or None for every case.
            transforms: eva / torchvision v2 transforms applied to `(volume, mask)`.
            profile: The model's preprocessing profile (see `SegmentationAdapter`).
            cache: The `coralbay preprocess` cache folder (None: the default one).
            use_cache: Whether to read standardised volumes from the cache when fresh.
            download: Whether `prepare_data` downloads the task's archive when `root` is empty.
            allow_incomplete: Accept a subset of the task: missing cases are skipped.
            train_cases: Train on this many cases only (see `SegmentationAdapter`).
        """
        # No `fold` or `num_classes`: a benchmark's split and class map are fixed.
        super().__init__(
            root=root,
            split=split,
            transforms=transforms,
            profile=profile,
            cache=cache,
            use_cache=use_cache,
            download=download,
            allow_incomplete=allow_incomplete,
            train_cases=train_cases,
        )

    @property
    @override
    def task_dir(self) -> Path:
        """`root/TaskNN_Name` or `root/DatasetNNN_Name` when there, else `root` itself.

        Looked up on each use: `prepare_data` may download the task after construction.
        """
        for candidate in (self.root / self.msd_task, self.root / self.nnunet_task):
            if candidate.is_dir():
                return candidate
        return self.root

    @override
    def bind_dataset(self, num_classes: int | None) -> None:
        """Reads nothing: the class map and the cache key (`task_id`) are the benchmark's own.

        dataset.json is checked against the class map by `check_metadata`, once the data is
        there.
        """

    @override
    def dataset_json(self, task_dir: Path) -> dict[str, Any]:
        """dataset.json, or {} when it is missing or broken (then labelsTr lists the cases).

        `check_metadata` reports such a file, so that `validate` names it with the other
        problems rather than the first read failing alone.
        """
        try:
            return super().dataset_json(task_dir)
        except decathlon_format.MetadataError:
            return {}

    @override
    def validation_ids(
        self, task_dir: Path, dataset_json: dict[str, Any], known: set[str]
    ) -> set[str]:
        """The fixed validation cases, whether on disk or not (`validate` names missing ones)."""
        return {self.case_format.format(number) for number in self.val_ids}

    @override
    def layout(self) -> str:
        """The native layout."""
        return f"{self.msd_task}/{{dataset.json, imagesTr/, labelsTr/, imagesTs/}}"

    @override
    def check_metadata(self) -> list[Problem]:
        """Checks that dataset.json exists, parses and has as many labels as the class map."""
        task_dir = self.task_dir
        path = task_dir / decathlon_format.DATASET_JSON
        if not path.is_file():
            return [Problem(str(path), "missing: every Decathlon task ships a dataset.json")]
        try:
            # The strict reader: `self.dataset_json` passes over a broken file for this report.
            labels = decathlon_format.label_names(
                decathlon_format.read_dataset_json(task_dir), path
            )
        except decathlon_format.MetadataError as error:
            return [error.problem()]
        if len(labels) != len(self.native_classes):
            return [
                Problem(
                    str(path),
                    f"declares {len(labels)} labels {labels}, {type(self).__name__} expects "
                    f"{len(self.native_classes)} {list(self.native_classes)}",
                )
            ]
        return []
