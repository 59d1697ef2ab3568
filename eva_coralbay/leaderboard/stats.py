"""From per-case scores: ties with the best (paired bootstrap, Holm-corrected), and intervals.

For each task, the entry with the best mean is compared with every other entry that has a
per-case score file, on the cases both scored. Cases are resampled with replacement (the
same resamples for both models: a paired bootstrap); on each resample the task's metric
statistic (`metrics.Metric.statistic`, the computation behind the published number: per case
the mean over classes, then over cases, for Dice; per class the mean over cases, then over
classes, for balanced accuracy) is recomputed for both and their difference taken. The
two-sided p-value inverts the percentile interval of the difference (p < 0.05 exactly when the
95% interval excludes 0), and Holm's step-down correction over a task's comparisons keeps the
family-wise error at ALPHA. An entry whose difference from the best is not significant is
marked as tied with it.

The resamples come from a generator seeded by the task, the best model and the cases, so
results are the same on every build and do not change when other models are added.

The confidence interval of an entry (`bootstrap_intervals`, shown on the website's task pages)
is the percentile interval of its own statistic over resamples of its cases.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard.metrics import Metric

ALPHA = 0.05
RESAMPLES = 2000


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "little")


def _weights(n_cases: int, seed: int, resamples: int) -> np.ndarray:
    """How often each case is drawn in each bootstrap resample (resamples x cases)."""
    drawn = np.random.default_rng(seed).integers(0, n_cases, size=(resamples, n_cases))
    offsets = np.arange(resamples)[:, None] * n_cases
    counts = np.bincount((drawn + offsets).ravel(), minlength=resamples * n_cases)
    return counts.reshape(resamples, n_cases).astype(float)


def _p_value(difference: np.ndarray) -> float:
    """Two-sided p-value of "no difference" by inverting the percentile interval.

    Resamples where either statistic is undefined (NaN: no scored case drawn) are left out;
    NaN when none is left.
    """
    difference = difference[~np.isnan(difference)]
    if len(difference) == 0:
        return float("nan")
    below = np.count_nonzero(difference <= 0)
    above = np.count_nonzero(difference >= 0)
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(difference) + 1)))


def paired_bootstrap_p_value(
    best: pd.DataFrame,
    other: pd.DataFrame,
    metric: Metric,
    seed: int,
    resamples: int = RESAMPLES,
) -> float:
    """Two-sided p-value that `best` and `other` have the same task statistic.

    Args:
        best: case x class scores of the best entry.
        other: case x class scores of the compared entry.
        metric: The task's metric, whose statistic is compared.
        seed: Seeds the resampling.
        resamples: How many bootstrap resamples.

    Returns:
        The p-value, or NaN when the two share no case.
    """
    cases = best.index.intersection(other.index)
    classes = best.columns.intersection(other.columns)
    if len(cases) == 0 or len(classes) == 0:
        return float("nan")
    weights = _weights(len(cases), seed, resamples)
    best_scores = best.loc[cases, classes].to_numpy(dtype=float)
    other_scores = other.loc[cases, classes].to_numpy(dtype=float)
    difference = metric.statistic(weights, best_scores) - metric.statistic(weights, other_scores)
    return _p_value(difference)


def _aligned(scores: pd.DataFrame, cases: pd.Index, classes: pd.Index) -> np.ndarray:
    """The scores of these cases and classes, as an array (no reindexing when they match)."""
    if scores.index.equals(cases) and scores.columns.equals(classes):
        return scores.to_numpy(dtype=float)
    return scores.loc[cases, classes].to_numpy(dtype=float)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    adjusted = np.full(len(p_values), np.nan)
    finite = np.flatnonzero(~np.isnan(p_values))
    order = finite[np.argsort(p_values[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def ties_with_best(
    task_id: str, metric: Metric, best_model: str, scores: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """Compares the best entry of a task with every other entry that has per-case scores.

    Args:
        task_id: The task (seeds the resampling).
        metric: The task's metric, whose statistic is compared.
        best_model: The model with the best mean on the task; must be a key of `scores`.
        scores: model id -> case x class scores.

    Returns:
        One row per compared model: `model_id`, `p_value` (Holm-adjusted) and `tied`.
    """
    others = sorted(model for model in scores if model != best_model)
    best = scores[best_model]
    # One set of resamples per set of shared cases (usually all of them), seeded by the task,
    # the best model and those cases: a model's p-value does not depend on the other models.
    resampled: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[np.ndarray, np.ndarray]] = {}
    raw = np.full(len(others), np.nan)
    for position, model in enumerate(others):
        cases = best.index.intersection(scores[model].index)
        classes = best.columns.intersection(scores[model].columns)
        if len(cases) == 0 or len(classes) == 0:
            continue
        key = (tuple(map(str, cases)), tuple(map(str, classes)))
        if key not in resampled:
            weights = _weights(len(cases), _seed(task_id, best_model, *key[0]), RESAMPLES)
            resampled[key] = weights, metric.statistic(weights, _aligned(best, cases, classes))
        weights, best_statistic = resampled[key]
        other_scores = _aligned(scores[model], cases, classes)
        raw[position] = _p_value(best_statistic - metric.statistic(weights, other_scores))
    adjusted = holm(raw)
    return pd.DataFrame(
        {"model_id": others, "p_value": adjusted, "tied": ~(adjusted < ALPHA) & ~np.isnan(adjusted)}
    )


LEVEL = 0.95
"""The coverage of the confidence intervals."""


def bootstrap_intervals(
    task_id: str, metric: Metric, scores: dict[str, pd.DataFrame], level: float = LEVEL
) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of each entry's task statistic.

    Cases are resampled with replacement (RESAMPLES times) and the published statistic
    (`metric.statistic`, the one the ranking and the tie test use) recomputed on each resample;
    resamples where it is undefined are left out. Entries scored on the same cases share
    the resamples, seeded by the task and those cases: an interval does not change when other
    models are added.

    Args:
        task_id: The task (seeds the resampling).
        metric: The task's metric: its statistic is the one resampled.
        scores: model id -> case x class scores.
        level: The coverage, e.g. 0.95.

    Returns:
        One row per model, sorted by id: `model_id`, `low` and `high` (NaN without cases).
    """
    models = sorted(scores)
    low, high = np.full(len(models), np.nan), np.full(len(models), np.nan)
    weights_of: dict[tuple[str, ...], np.ndarray] = {}
    tail = (1.0 - level) / 2
    for position, model in enumerate(models):
        table = scores[model]
        if table.empty:
            continue
        key = tuple(map(str, table.index))
        if key not in weights_of:
            weights_of[key] = _weights(len(key), _seed("interval", task_id, *key), RESAMPLES)
        statistic = metric.statistic(weights_of[key], table.to_numpy(dtype=float))
        defined = statistic[~np.isnan(statistic)]
        if defined.size:
            low[position], high[position] = np.quantile(defined, [tail, 1.0 - tail])
    return pd.DataFrame({"model_id": models, "low": low, "high": high})
