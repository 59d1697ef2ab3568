"""MSD Task03 Liver: liver and liver tumour segmentation in CT (the LiTS training scans)."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd

LITS_VAL_IDS = frozenset(
    {2, 3, 14, 16, 17, 48, 49, 51, 57, 65, 67, 70, 74, 81, 85, 92, 99, 100, 101, 103, 116, 123, 126}
)
"""The 23 validation cases of VoCo's dataset_lits.json, which names MSD Task03's liver_N files
(and equals eva's LiTS17 validation split)."""


class MSDLiver(msd.MSDAdapter):
    """Decathlon Task03 Liver: 131 labelled CT scans; split 108 train / 23 val."""

    task_id: ClassVar[str] = "msd_task3_liver"
    msd_task: ClassVar[str] = "Task03_Liver"
    case_format: ClassVar[str] = "liver_{}"
    val_ids: ClassVar[frozenset[int]] = LITS_VAL_IDS
