"""The 3D radiology leaderboard: submission schema, task registry, submit, validate, build.

Pure Python with pandas, pyarrow and matplotlib: it never imports torch, eva or another layer
of this package, so `coralbay leaderboard` answers fast. Importing this package loads only the
registry and the schema; the builders are imported by what uses them.
"""

from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.metrics import METRICS, Metric, get_metric
from eva_coralbay.leaderboard.schema import SCHEMA_VERSION
from eva_coralbay.leaderboard.tasks import Registry, Task, builtin_registry

__all__ = [
    "METRICS",
    "SCHEMA_VERSION",
    "LeaderboardError",
    "Metric",
    "Registry",
    "Task",
    "builtin_registry",
    "get_metric",
]
