"""TotalSegmentator v2: 1228 CT scans with 117 anatomical structures."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eva_coralbay.data.adapters import base, download
from eva_coralbay.data.adapters.validation import Problem

META_CSV = "meta.csv"
"""The release's per-subject table (';'-separated) with the official `split` column."""

_SPLITS = {"train": "train", "val": "val", "test": "test"}


class TotalSegmentatorV2(base.SegmentationAdapter):
    """TotalSegmentator v2.0.1: CT of the whole body, 117 classes, official train/val/test split.

    Native layout (Totalsegmentator_dataset_v201.zip, unpacked flat into `root`):
    `s0000/ct.nii.gz`, `s0000/segmentations/<class>.nii.gz` (one binary mask per class, all 117
    present for every subject) and `meta.csv` with columns `image_id` and `split`. The per-class
    masks are merged into one label map with the TotalSegmentator v2 ids (1 = spleen ...).
    """

    task_id: ClassVar[str] = "totalsegmentator_v2"
    split_names: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    resources: ClassVar[tuple[download.Resource, ...]] = (
        download.Resource(
            url="https://zenodo.org/records/10047292/files/Totalsegmentator_dataset_v201.zip",
            filename="Totalsegmentator_dataset_v201.zip",
            # The MD5 eva's TotalSegmentator2D dataset verifies the same archive against.
            md5="fe250e5718e0a3b5df4c4ea9d58a62fe",
        ),
    )
    manual_download: ClassVar[str] = """
Download Totalsegmentator_dataset_v201.zip from https://zenodo.org/records/10047292
(MD5 fe250e5718e0a3b5df4c4ea9d58a62fe) and unzip it into ROOT, so that
ROOT/meta.csv and ROOT/s0000/segmentations/spleen.nii.gz exist.
"""

    def layout(self) -> str:
        """The native layout."""
        return "meta.csv + sNNNN/{ct.nii.gz, segmentations/<117 class names>.nii.gz}"

    def catalogue(self) -> list[base.Case]:
        """Every subject meta.csv lists, with the split it gives."""
        return [
            base.Case(
                case_id=subject,
                split=split,
                image=self.root / subject / "ct.nii.gz",
                labels=tuple(
                    base.LabelPart(self.root / subject / "segmentations" / f"{name}.nii.gz", index)
                    for index, name in enumerate(self.native_classes[1:], start=1)
                ),
            )
            for subject, split in self._subjects()
        ]

    def check_metadata(self) -> list[Problem]:
        """Checks that meta.csv exists and has the `image_id` and `split` columns."""
        try:
            self._read_meta()
        except ValueError as error:
            return [Problem(str(self.root / META_CSV), str(error))]
        return []

    def _subjects(self) -> list[tuple[str, str]]:
        try:
            table = self._read_meta()
        except ValueError:
            return []  # check_metadata reports it
        return sorted(
            (
                (str(subject), _SPLITS[str(split)])
                for subject, split in zip(table["image_id"], table["split"], strict=True)
            ),
            key=lambda item: base.natural_key(item[0]),
        )

    def _read_meta(self):
        import pandas as pd

        path: Path = self.root / META_CSV
        if not path.is_file():
            raise ValueError("missing: the release ships meta.csv with the official split")
        table = pd.read_csv(path, sep=";", dtype=str)
        missing = {"image_id", "split"} - set(table.columns)
        if missing:
            raise ValueError(f"lacks the column(s) {sorted(missing)} (is it ';'-separated?)")
        unknown = sorted(set(table["split"]) - set(_SPLITS))
        if unknown:
            raise ValueError(f"split values {unknown} are not train / val / test")
        return table
