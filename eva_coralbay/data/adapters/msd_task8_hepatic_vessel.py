"""MSD Task08 Hepatic Vessel: liver vessels and liver tumours in portal-venous CT."""

from __future__ import annotations

from typing import ClassVar

from eva_coralbay.data.adapters import msd


class MSDHepaticVessel(msd.MSDAdapter):
    """Decathlon Task08 Hepatic Vessel: 303 labelled CT scans; split 242 train / 61 val."""

    task_id: ClassVar[str] = "msd_task8_hepatic_vessel"
    msd_task: ClassVar[str] = "Task08_HepaticVessel"
    case_format: ClassVar[str] = "hepaticvessel_{:03d}"
    val_ids: ClassVar[frozenset[int]] = frozenset(
        {18, 19, 26, 28, 30, 50, 53, 58, 66, 77, 80, 82, 84, 85, 87, 98, 100, 110, 112, 127, 129,
         146, 147, 150, 157, 161, 164, 167, 175, 194, 206, 213, 217, 218, 224, 234, 244, 248, 266,
         269, 270, 272, 274, 275, 282, 309, 329, 333, 358, 359, 361, 363, 368, 375, 422, 424, 437,
         441, 444, 445, 458}
    )  # fmt: skip
