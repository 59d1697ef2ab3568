"""MSD Task10 Colon: primary colon cancer segmentation in CT."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd


class MSDColon(msd.MSDAdapter):
    """Decathlon Task10 Colon: 126 labelled CT scans; split 100 train / 26 val."""

    task_id: ClassVar[str] = "msd_task10_colon"
    msd_task: ClassVar[str] = "Task10_Colon"
    case_format: ClassVar[str] = "colon_{:03d}"
    val_ids: ClassVar[frozenset[int]] = frozenset(
        {8, 27, 30, 33, 41, 42, 61, 74, 75, 88, 91, 92, 95, 102, 111, 115, 118, 124, 127, 154, 161,
         162, 165, 166, 169, 187}
    )  # fmt: skip
