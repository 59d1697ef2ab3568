"""What eva needs from the plugin at run time: a NaN-safe results recorder and per-case scores.

Importing this package makes eva's session recorder NaN-safe; configs import it by naming the
`PerCaseScores` callback.
"""

from eva_coralbay.evaluation.per_case import PerCaseScores
from eva_coralbay.evaluation.recorder import install_nan_safe_recorder

install_nan_safe_recorder()

__all__ = ["PerCaseScores", "install_nan_safe_recorder"]
