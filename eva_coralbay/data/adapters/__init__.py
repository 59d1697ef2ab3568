"""Benchmark adapters: public CT datasets in their native layout, standardised by a model profile.

Every segmentation adapter is an eva `VisionDataset` usable from an eva YAML config
(`class_path: eva_coralbay.data.adapters.BTCV`), with a fixed split, a class map onto the
canonical vocabulary (`vocabulary.CANONICAL_CLASSES`), its licence, `prepare_data` and a
`validate` that reports every broken file at once.
"""

from eva_coralbay.data.adapters.amos22 import AMOS22CT
from eva_coralbay.data.adapters.base import Case, SegmentationAdapter, StandardCase
from eva_coralbay.data.adapters.btcv import BTCV
from eva_coralbay.data.adapters.cc_ccii import CC_CCII
from eva_coralbay.data.adapters.chaos import CHAOS
from eva_coralbay.data.adapters.decathlon_format import DecathlonFormat
from eva_coralbay.data.adapters.flare22 import FLARE22
from eva_coralbay.data.adapters.kits23 import KiTS23
from eva_coralbay.data.adapters.lits17 import LiTS17
from eva_coralbay.data.adapters.luna25 import LUNA25
from eva_coralbay.data.adapters.medmnist3d import NoduleMNIST3D, OrganMNIST3D
from eva_coralbay.data.adapters.msd_task3_liver import MSDLiver
from eva_coralbay.data.adapters.msd_task6_lung import MSDLung
from eva_coralbay.data.adapters.msd_task7_pancreas import MSDPancreas
from eva_coralbay.data.adapters.msd_task8_hepatic_vessel import MSDHepaticVessel
from eva_coralbay.data.adapters.msd_task9_spleen import MSDSpleen
from eva_coralbay.data.adapters.msd_task10_colon import MSDColon
from eva_coralbay.data.adapters.organ_patches import OrganPatches
from eva_coralbay.data.adapters.scan_level import ScanClassificationAdapter
from eva_coralbay.data.adapters.scan_table import ScanTable
from eva_coralbay.data.adapters.totalsegmentator_v2 import TotalSegmentatorV2
from eva_coralbay.data.adapters.validation import DatasetValidationError
from eva_coralbay.data.adapters.word import WORD

SEGMENTATION_ADAPTERS: tuple[type[SegmentationAdapter], ...] = (
    BTCV,
    LiTS17,
    MSDPancreas,
    TotalSegmentatorV2,
    AMOS22CT,
    KiTS23,
    WORD,
    FLARE22,
    CHAOS,
    MSDLiver,
    MSDLung,
    MSDHepaticVessel,
    MSDSpleen,
    MSDColon,
)
"""Every segmentation benchmark, in leaderboard order."""

SCAN_ADAPTERS: tuple[type[CC_CCII], ...] = (CC_CCII,)
"""Scan-level classification benchmarks: whole scans, standardised and cached like segmentation
cases (`coralbay preprocess`), one class per scan."""


def adapter_by_name(name: str) -> type[SegmentationAdapter] | type[ScanClassificationAdapter]:
    """The adapter class of a class name ("BTCV") or task id ("btcv") that `preprocess` caches.

    Besides the benchmarks, "DecathlonFormat" ("decathlon_format") names the adapter of any
    dataset in the Decathlon / nnU-Net raw layout, and "ScanTable" ("scan_table") that of any
    scan-labelled dataset listed in a table.

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    cached = (*SEGMENTATION_ADAPTERS, DecathlonFormat, *SCAN_ADAPTERS, ScanTable)
    for adapter in cached:
        if name in (adapter.__name__, adapter.task_id):
            return adapter
    known = ", ".join(f"{a.__name__} ({a.task_id})" for a in cached)
    raise ValueError(f"unknown dataset {name!r}; known: {known}")


__all__ = [
    "AMOS22CT",
    "BTCV",
    "CC_CCII",
    "CHAOS",
    "FLARE22",
    "LUNA25",
    "SCAN_ADAPTERS",
    "SEGMENTATION_ADAPTERS",
    "WORD",
    "Case",
    "DatasetValidationError",
    "DecathlonFormat",
    "KiTS23",
    "LiTS17",
    "MSDColon",
    "MSDHepaticVessel",
    "MSDLiver",
    "MSDLung",
    "MSDPancreas",
    "MSDSpleen",
    "NoduleMNIST3D",
    "OrganMNIST3D",
    "OrganPatches",
    "ScanClassificationAdapter",
    "ScanTable",
    "SegmentationAdapter",
    "StandardCase",
    "TotalSegmentatorV2",
    "adapter_by_name",
]
