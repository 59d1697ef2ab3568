"""The leaderboard's seed: eva's published radiology numbers, as reported entries.

Two sources, oldest first. Their numbers for VoCo-B and VoCo-H on BTCV, LiTS17 and MSD
Pancreas differ (the later one re-ran eva's radiology protocol on eleven tasks). A model has
one entry per task, so the later source replaces the earlier one and the earlier numbers stay
in `submissions/<model>/history/`, listed under "Superseded entries" in the README: nothing is
averaged or dropped, and every number names its source.

What the sources do not state is left empty rather than guessed: parameter counts,
embedding sizes, and the pretraining data (so contamination shows as unknown). The weights
sources are the checkpoints eva's backbone registry loads for these names.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.store import Store
from eva_coralbay.leaderboard.submit import ModelDetails, submit_reported

RECORDED = "2026-11-27"
"""The day the seed entries were recorded."""

EVA_0_4_5 = (
    "kaiko-ai/eva 0.4.5, tools/data/leaderboards/radiology.csv",
    "https://github.com/kaiko-ai/eva/blob/0.4.5/tools/data/leaderboards/radiology.csv",
)
EVA_PR_1021 = (
    "kaiko-ai/eva pull request #1021, [Radiology] Update the radiology leaderboard",
    "https://github.com/kaiko-ai/eva/pull/1021",
)

MODELS: dict[str, ModelDetails] = {
    "voco_b": ModelDetails(
        display_name="VoCo-B",
        weights_source="https://huggingface.co/Luffy503/VoCo/resolve/main/VoCo_B_SSL_head.pt",
    ),
    "voco_h": ModelDetails(
        display_name="VoCo-H",
        weights_source="https://huggingface.co/Luffy503/VoCo/resolve/main/VoCo_H_SSL_head.pt",
    ),
    "vit_b16_dino_2d": ModelDetails(display_name="ViT-B/16 DINO (2D baseline)"),
    "swinunetr": ModelDetails(display_name="SwinUNETR"),
    "universal_model": ModelDetails(
        display_name="Universal Model",
        weights_source=(
            "https://huggingface.co/ljwztc/CLIP-Driven-Universal-Model/resolve/main/"
            "clip_driven_universal_swin_unetr.pth"
        ),
    ),
    "suprem": ModelDetails(
        display_name="SuPreM",
        weights_source=(
            "https://huggingface.co/MrGiovanni/SuPreM/resolve/main/"
            "supervised_suprem_swinunetr_2100.pth"
        ),
    ),
}

EVA_0_4_5_TASKS = ("btcv", "lits17", "msd_task7_pancreas")
EVA_0_4_5_DICE: dict[str, tuple[float, ...]] = {
    "voco_b": (0.830, 0.816, 0.734),
    "voco_h": (0.832, 0.818, 0.725),
    "vit_b16_dino_2d": (0.690, 0.677, 0.445),
}

EVA_PR_1021_TASKS = (
    "nodulemnist",
    "organmnist",
    "cc-ccii",
    "luna25",
    "btcv",
    "word",
    "flare22",
    "chaos",
    "lits17",
    "kits23",
    "msd_task7_pancreas",
)
EVA_PR_1021_SCORES: dict[str, tuple[float, ...]] = {
    "swinunetr": (0.83, 0.99, 0.90, 0.81, 0.74, 0.85, 0.90, 0.96, 0.82, 0.74, 0.72),
    "universal_model": (0.78, 0.96, 0.77, 0.72, 0.81, 0.83, 0.91, 0.97, 0.81, 0.74, 0.67),
    "suprem": (0.71, 0.98, 0.83, 0.74, 0.81, 0.85, 0.91, 0.97, 0.81, 0.80, 0.72),
    "voco_b": (0.74, 0.96, 0.71, 0.72, 0.83, 0.86, 0.92, 0.97, 0.81, 0.78, 0.71),
    "voco_h": (0.76, 0.92, 0.83, 0.70, 0.83, 0.85, 0.92, 0.97, 0.82, 0.82, 0.72),
}
"""Balanced accuracy for the first four tasks, Dice for the rest."""


def write_seed_entries(root: pathlib.Path) -> int:
    """Writes the seed entries into an empty leaderboard folder.

    Returns:
        The number of entries written (replaced ones included).

    Raises:
        LeaderboardError: When the folder already has submissions.
    """
    if Store(root).entry_paths():
        raise LeaderboardError(f"{root}: already has submissions; seed an empty folder")
    written = 0
    for source, task_ids, table, replace in (
        (EVA_0_4_5, EVA_0_4_5_TASKS, EVA_0_4_5_DICE, False),
        (EVA_PR_1021, EVA_PR_1021_TASKS, EVA_PR_1021_SCORES, True),
    ):
        for model_id, scores in table.items():
            for task_id, score in zip(task_ids, scores, strict=True):
                submit_reported(
                    root,
                    model_id=model_id,
                    task_id=task_id,
                    mean=score,
                    citation=source[0],
                    url=source[1],
                    details=MODELS[model_id],
                    replace=replace,
                    date=RECORDED,
                )
                written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m eva_coralbay.leaderboard.seeds --root DIR`: seeds an empty folder."""
    parser = argparse.ArgumentParser(description="Seeds an empty leaderboard folder.")
    parser.add_argument("--root", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    try:
        print(f"wrote {write_seed_entries(args.root)} seed entries into {args.root}")
    except LeaderboardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
