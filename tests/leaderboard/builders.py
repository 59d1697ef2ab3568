"""Helpers that fill leaderboard folders for the build and validate tests."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd

from eva_coralbay import demo
from eva_coralbay.leaderboard import task_file
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


def declare_phantom_tasks(
    root: pathlib.Path, classes: Sequence[str] = ("background", "liver", "spleen")
) -> None:
    """Writes the tasks.yaml `coralbay demo` writes: its two synthetic phantom tasks."""
    entries = demo.decathlon_tasks(
        demo.PHANTOM_SEGMENTATION_TASK,
        demo.PHANTOM_ORGANS_TASK,
        classes,
        names=("Phantom organs", "Phantom organ patches"),
        source="Synthetic torso phantoms",
        image_source="demo_phantom",
        synthetic=True,
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / task_file.FILENAME).write_text(task_file.dump(entries))


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


REPOSITORY_SUBMISSIONS = pathlib.Path(__file__).resolve().parents[2] / "leaderboard" / "submissions"
"""The seeded published numbers of the repository's leaderboard."""

AWKWARD_NAME = "Tiny <script>alert('x')</script> & \"Co\""
"""A display name that must come out escaped on every page."""


def realistic_board(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The seeded published numbers plus submitted eva runs of four models.

    `coralbay` (declared pretraining that contains BTCV: contaminated there) and `clean_net`
    (pretrained on nothing) carry per-case scores on BTCV and WORD, so the task pages have tie
    tests, confidence intervals and per-class scores; `coralbay` also has a classification
    run. `tiny` (an awkward display name, embedding size only, pretraining undeclared) replaced
    its BTCV run once, so its page has a superseded entry; `organ_probe` has only a
    classification run.
    """
    shutil.copytree(REPOSITORY_SUBMISSIONS, root / "submissions")
    coralbay = ModelDetails(
        display_name="CoralBay F48",
        parameters=62_000_000,
        embedding_dim=768,
        pretraining_datasets=["totalsegmentator", "btcv"],
        weights_source="https://example.org/coralbay-f48.safetensors",
        weights_sha256="ab" * 32,
    )
    clean = ModelDetails(
        display_name="Clean net", parameters=25_000_000, embedding_dim=512, pretraining_datasets=[]
    )
    for model, details, level, seed in (
        ("coralbay", coralbay, 0.86, 1),
        ("clean_net", clean, 0.8, 2),
    ):
        for task, shift in (("btcv", 0.0), ("word", -0.02)):
            submit_scores(
                root,
                tmp_path,
                model,
                task,
                eva_output.dice_runs(level + shift),
                per_case=per_case_dice(level + shift, seed=seed),
                details=details,
            )
    organ = eva_output.write_session(
        tmp_path / "runs" / "coralbay" / "organmnist",
        eva_output.CLASSIFICATION_TEMPLATE,
        eva_output.classification_metrics([0.93, 0.94, 0.92, 0.95, 0.93]),
    )
    submit_run(organ, root, model_id="coralbay", task_id="organmnist")
    probe = eva_output.write_session(
        tmp_path / "runs" / "organ_probe" / "organmnist",
        eva_output.CLASSIFICATION_TEMPLATE,
        eva_output.classification_metrics([0.61, 0.63, 0.6, 0.62, 0.61]),
    )
    submit_run(
        probe,
        root,
        model_id="organ_probe",
        task_id="organmnist",
        details=ModelDetails(display_name="Organ probe", pretraining_datasets=["lits17"]),
    )
    tiny = ModelDetails(display_name=AWKWARD_NAME, embedding_dim=384)
    submit_scores(root, tmp_path, "tiny", "btcv", [0.5, 0.52], details=tiny)
    again = eva_output.write_session(
        tmp_path / "runs" / "tiny_again",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics([0.55, 0.57]),
        session="20261128-090000000000_5e6f7a8b",
    )
    submit_run(again, root, model_id="tiny", task_id="btcv", replace=True)
