"""The metrics a leaderboard task may be scored with, and how each is computed from cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from eva_coralbay.leaderboard.errors import LeaderboardError

if TYPE_CHECKING:
    import numpy as np

Direction = Literal["higher", "lower"]

Statistic = Callable[["np.ndarray", "np.ndarray"], "np.ndarray"]
"""(weights, scores) -> one value per row of weights: the task's number on a weighted draw.

`weights` is resamples x cases (how often each case is drawn; all ones is the evaluated set
itself), `scores` cases x classes as `case_scores.load_scores` reads a per-case file, NaN where
a case has no score for a class. NaN where the statistic is undefined on a draw.
"""


def mean_over_cases_of_class_means(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per case the mean over its defined classes, then the weighted mean over cases.

    torchmetrics' `DiceScore(average="macro")` (samplewise, its default, as eva uses it) takes
    each case's `nanmean` over classes, so a class absent from both prediction and reference
    (NaN) leaves that case's mean to the other classes, and then the `nanmean` over cases, so a
    case with no defined class at all is left out rather than counted as 0 or 1. Both are
    followed here; a draw with no defined case is NaN, as torchmetrics returns then.

    The scores of several runs are averaged per case and class before this (`load_scores`),
    which gives the mean of the runs' numbers whenever the runs agree on which scores are NaN.
    """
    import numpy as np

    defined = ~np.isnan(scores)
    counts = defined.sum(axis=1)
    scored = counts > 0
    case_means = np.where(defined, scores, 0.0).sum(axis=1)[scored] / counts[scored]
    drawn = weights[:, scored]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (drawn @ case_means) / drawn.sum(axis=1)


def mean_over_classes_of_case_means(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per class the weighted mean over its cases, then the mean over classes.

    On classification rows (one per case: its true class, 1 if predicted correctly, else 0)
    a class's mean is its recall, and the mean over classes balanced accuracy. Classes with
    no drawn case are left out; a draw with none is NaN.

    torchmetrics' `MulticlassAccuracy(average="macro")` also counts, with recall 0, a class
    that is predicted but is no case's true class (eva's `BinaryBalancedAccuracy`: either
    class); the rows name true classes only, so on such a set the two differ.
    """
    import numpy as np

    defined = ~np.isnan(scores)
    totals = weights @ np.where(defined, scores, 0.0)
    counts = weights @ defined.astype(float)
    valid = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        class_means = np.where(valid, totals / np.where(valid, counts, 1.0), 0.0)
        return class_means.sum(axis=1) / valid.sum(axis=1)


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

    statistic: Statistic
    """How the published number follows from a per-case score file (see `Statistic`); the
    tie test resamples exactly this."""

    def estimate(self, scores: np.ndarray) -> float:
        """The statistic of the evaluated cases themselves (no resampling).

        Args:
            scores: cases x classes, NaN where a case has no score for a class.
        """
        import numpy as np

        return float(self.statistic(np.ones((1, scores.shape[0])), scores)[0])


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
            statistic=mean_over_cases_of_class_means,
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
            statistic=mean_over_classes_of_case_means,
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
