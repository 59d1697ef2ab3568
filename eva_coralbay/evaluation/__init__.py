"""What eva needs from the plugin at run time: NaN-safe results, per-case scores, config parts.

Configs name what they use: the `NanSafeResults` and `PerCaseScores` callbacks, per-class Dice
that works with one validation case, the rotation augmentation in the profile's axial plane and
the probes' embeddings dataset with its per-class cap (the label-efficiency track) and the
whole-scan backbone of scan-level probes. Importing this package changes nothing in eva.
"""

from eva_coralbay.evaluation.augmentations import RandRotate90Axial
from eva_coralbay.evaluation.dice import PerClassDiceScore
from eva_coralbay.evaluation.embeddings import EmbeddingsClassificationSubset
from eva_coralbay.evaluation.per_case import PerCaseScores
from eva_coralbay.evaluation.recorder import NanSafeResults, install_nan_safe_recorder
from eva_coralbay.evaluation.whole_scan import WholeScanEmbedder

__all__ = [
    "EmbeddingsClassificationSubset",
    "NanSafeResults",
    "PerCaseScores",
    "PerClassDiceScore",
    "RandRotate90Axial",
    "WholeScanEmbedder",
    "install_nan_safe_recorder",
]
