"""MSD Task07 Pancreas: pancreas and pancreatic mass segmentation in portal-venous CT."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd


class MSDPancreas(msd.MSDAdapter):
    """Decathlon Task07 Pancreas: 281 labelled CT scans; split 257 train / 24 val."""

    task_id: ClassVar[str] = "msd_task7_pancreas"
    msd_task: ClassVar[str] = "Task07_Pancreas"
    case_format: ClassVar[str] = "pancreas_{:03d}"
    val_ids: ClassVar[frozenset[int]] = frozenset(
        {12, 19, 25, 32, 35, 40, 43, 45, 69, 87, 88, 94, 96, 100, 101, 102, 120, 125, 131, 135,
         155, 183, 198, 199}
    )  # fmt: skip
