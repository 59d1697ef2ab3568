"""What eva needs from the plugin at run time: a NaN-safe results recorder and per-case scores.

Importing this package makes eva's session recorder NaN-safe; configs import it by naming the
`PerCaseScores` callback. It also holds the config parts that eva lacks: per-class Dice that
works with one validation case, and the rotation augmentation in the profile's axial plane.
"""

from eva_coralbay.evaluation.metrics import PerClassDiceScore
from eva_coralbay.evaluation.per_case import PerCaseScores
from eva_coralbay.evaluation.recorder import install_nan_safe_recorder
from eva_coralbay.evaluation.transforms import RandRotate90Axial

install_nan_safe_recorder()

__all__ = ["PerCaseScores", "PerClassDiceScore", "RandRotate90Axial", "install_nan_safe_recorder"]
