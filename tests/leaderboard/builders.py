"""Helpers that fill leaderboard folders for the build and validate tests."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard.submit import ModelDetails, submit_run
from tests.leaderboard import eva_output


def submit_scores(
    root: pathlib.Path,
    tmp_path: pathlib.Path,
    model_id: str,
    task_id: str,
    values: list[float],
    *,
    per_case: pd.DataFrame | None = None,
    details: ModelDetails | None = None,
) -> None:
    """Submits an eva-layout segmentation session with these per-run Dice values."""
    session = eva_output.write_session(
        tmp_path / "runs" / model_id / task_id,
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics(values),
    )
    if per_case is not None:
        per_case.to_parquet(session / "per_case_scores.parquet")
    submit_run(session, root, model_id=model_id, task_id=task_id, details=details)


def per_case_dice(level: float, seed: int, cases: int = 40, noise: float = 0.03) -> pd.DataFrame:
    """Per-case, per-class Dice around `level` for three organs (the same cases for any seed)."""
    generator = np.random.default_rng(seed)
    case_effect = np.random.default_rng(0).normal(0, 0.05, cases)  # shared difficulty
    rows = []
    for organ_index, organ in enumerate(("spleen", "liver", "pancreas")):
        scores = level - 0.05 * organ_index + case_effect + generator.normal(0, noise, cases)
        rows += [
            {"case_id": f"case_{case:03d}", "class": organ, "score": float(np.clip(score, 0, 1))}
            for case, score in enumerate(scores)
        ]
    return pd.DataFrame(rows)
