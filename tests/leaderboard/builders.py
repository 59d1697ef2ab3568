"""Helpers that fill leaderboard folders for the build and validate tests."""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eva_coralbay import demo
from eva_coralbay.leaderboard import robustness_board, task_file
from eva_coralbay.leaderboard.submit import ModelDetails, SubmitResult, submit_run
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
) -> SubmitResult:
    """Submits an eva-layout segmentation session with these per-run Dice values."""
    session = eva_output.write_session(
        tmp_path / "runs" / model_id / task_id,
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics(values),
    )
    if per_case is not None:
        per_case.to_parquet(session / "per_case_scores.parquet")
    return submit_run(session, root, model_id=model_id, task_id=task_id, details=details)


VARIANT_TEMPLATE = eva_output.SEGMENTATION_TEMPLATE.replace(
    "          split: train\n",
    "          split: train\n          train_cases: ${oc.env:TRAIN_CASES, all}\n",
    1,
)
"""The segmentation session's config with the label-efficiency setting the shipped ones have."""


def submit_variant(
    root: pathlib.Path,
    tmp_path: pathlib.Path,
    model_id: str,
    task_id: str,
    train_cases: int,
    values: list[float],
    *,
    details: ModelDetails | None = None,
) -> SubmitResult:
    """Submits a segmentation session trained on `train_cases` cases, naming only the task.

    The config says how many cases it trained on: the entry is the variant `<task>@<count>`.
    """
    session = eva_output.write_session(
        tmp_path / "runs" / model_id / f"{task_id}@{train_cases}",
        VARIANT_TEMPLATE,
        eva_output.segmentation_metrics(values),
        env={"TRAIN_CASES": str(train_cases)},
    )
    return submit_run(session, root, model_id=model_id, task_id=task_id, details=details)


def robustness_record(
    model: str = "radiology/coralbay", cosines: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """A valid `coralbay robustness` record of two scans with these mean cosines by name."""
    kinds = {"window": "window", "spacing": "spacing", "input": "orientation", "flip": "flip"}
    cosines = cosines or {
        "window_centre_minus_100": 0.991,
        "window_lung": 0.62,
        "spacing_1mm": 0.955,
        "input_lps": 1.0,
        "flip_left_right": 0.87,
    }
    scans = ["scans/a.nii.gz", "scans/b.nii.gz"]
    return {
        "record_type": "coralbay-robustness",
        "schema_version": 1,
        "date": "2026-11-30",
        "model": model,
        "checkpoint": None,
        "checkpoint_sha256": "c" * 64,
        "profile": {
            "orientation": "RAS",
            "spacing": [1.5, 1.5, 1.5],
            "intensity_range": [-175.0, 250.0],
            "output_range": [0.0, 1.0],
        },
        "embedding": {"dim": 1152, "roi_size": [96, 96, 96], "overlap": 0.5, "precision": "fp32"},
        "task": {"id": "btcv", "split": "val"},
        "versions": {"eva-coralbay": "0.1.0", "torch": None},
        "scans": [
            {
                "scan": scan,
                "content_sha256": f"{index}" * 64,
                "source_shape": [64, 64, 32],
                "source_spacing": [1.0, 1.0, 2.5],
                "shape": [43, 43, 53],
            }
            for index, scan in enumerate(scans)
        ],
        "perturbations": [
            {
                "name": name,
                "kind": kinds[name.split("_")[0]],
                "parameters": {},
                "mean_cosine": cosine,
                "min_cosine": cosine - 0.01 if cosine < 1 else cosine,
                "per_scan": [{"scan": scan, "cosine": cosine} for scan in scans],
            }
            for name, cosine in cosines.items()
        ],
        "orientation_identical": True,
    }


def write_json(path: pathlib.Path, data: Any) -> pathlib.Path:
    """Writes `data` as JSON (creating the folder); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


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

    Beside the ranking: label-efficiency variants of BTCV (`coralbay` on 1 and 5 cases,
    `clean_net` on 5, and `few_shot`, a model with no full-label entry, on 1) and robustness
    records of `coralbay` and of `robust_only` (no entry at all).
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
    for model, cases, level in (
        ("coralbay", 1, 0.41),
        ("coralbay", 5, 0.74),
        ("clean_net", 5, 0.69),
        ("few_shot", 1, 0.35),
    ):
        submit_variant(root, tmp_path, model, "btcv", cases, eva_output.dice_runs(level))
    for model, cosines in (("coralbay", None), ("robust_only", {"window_lung": 0.97})):
        record = robustness_record(f"radiology/{model}", cosines)
        robustness_board.submit(write_json(tmp_path / f"{model}.json", record), root)
