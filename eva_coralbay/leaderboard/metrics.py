"""The metrics a leaderboard task may be scored with."""

from __future__ import annotations

import dataclasses
from typing import Literal

from eva_coralbay.leaderboard.errors import LeaderboardError

Direction = Literal["higher", "lower"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """A leaderboard metric: its range and which way is better."""

    id: str
    """The id stored in submissions (`dice`, `balanced_accuracy`)."""

    display_name: str
    """The name shown in tables."""

    direction: Direction
    """Whether a higher or a lower value is better."""

    lower: float
    """The smallest valid value."""

    upper: float
    """The largest valid value."""

    description: str
    """What exactly is measured, for the leaderboard's README."""


METRICS: dict[str, Metric] = {
    metric.id: metric
    for metric in (
        Metric(
            id="dice",
            display_name="Dice",
            direction="higher",
            lower=0.0,
            upper=1.0,
            description=(
                "macro Dice over the foreground classes, background excluded "
                "(eva's `DiceScore`: torchmetrics `DiceScore(average='macro', "
                "include_background=False)`)"
            ),
        ),
        Metric(
            id="balanced_accuracy",
            display_name="Balanced accuracy",
            direction="higher",
            lower=0.0,
            upper=1.0,
            description=(
                "mean recall over the classes (eva's `BinaryBalancedAccuracy` for binary "
                "tasks; `MulticlassAccuracy` with eva's default `average='macro'` for "
                "multiclass tasks, which is the same quantity)"
            ),
        ),
    )
}
"""Every metric a task may use, by id."""


def get_metric(metric_id: str) -> Metric:
    """Returns the metric with this id.

    Raises:
        LeaderboardError: When no such metric is registered.
    """
    try:
        return METRICS[metric_id]
    except KeyError:
        raise LeaderboardError(
            f"unknown metric {metric_id!r}; known metrics: {', '.join(sorted(METRICS))}"
        ) from None
