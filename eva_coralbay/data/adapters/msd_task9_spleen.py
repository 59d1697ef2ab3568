"""MSD Task09 Spleen: spleen segmentation in portal-venous CT."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd


class MSDSpleen(msd.MSDAdapter):
    """Decathlon Task09 Spleen: 41 labelled CT scans; split 32 train / 9 val."""

    task_id: ClassVar[str] = "msd_task9_spleen"
    msd_task: ClassVar[str] = "Task09_Spleen"
    case_format: ClassVar[str] = "spleen_{}"
    val_ids: ClassVar[frozenset[int]] = frozenset({10, 13, 14, 17, 31, 33, 44, 47, 56})
