"""MSD Task06 Lung: non-small-cell lung cancer segmentation in CT."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd


class MSDLung(msd.MSDAdapter):
    """Decathlon Task06 Lung: 63 labelled CT scans; split 50 train / 13 val."""

    task_id: ClassVar[str] = "msd_task6_lung"
    msd_task: ClassVar[str] = "Task06_Lung"
    case_format: ClassVar[str] = "lung_{:03d}"
    val_ids: ClassVar[frozenset[int]] = frozenset(
        {6, 10, 33, 34, 41, 42, 46, 48, 59, 65, 66, 70, 79}
    )
