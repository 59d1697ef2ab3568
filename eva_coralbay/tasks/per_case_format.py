"""The per-case score file: what the evaluation callback writes and the leaderboard reads.

One row per (case, class) with the case's score for that class. Required columns: `case_id`
(string or integer), `class` (string or integer) and `score` (float; NaN or null where the score
is undefined, e.g. Dice of a class absent from both prediction and label; pandas writes NaN as
null). Optional: `run` (integer; rows of several runs are averaged per case and class),
`stage` (`val` / `test`; only rows of the submission's stage are used) and `dataset_size`
(integer: how many cases the evaluated dataset has; every evaluation, i.e. run, stage and
dataloader, must then have scored that many distinct cases, else the file is refused).

For segmentation a row is one class's Dice on one scan; for classification a row is one scan,
its true class and a score of 1 (correct) or 0.
"""

FILENAME = "per_case_scores.parquet"
"""The file eva runs of the shipped configs write beside results.json."""

REQUIRED_COLUMNS = ("case_id", "class", "score")
"""Columns every per-case file has."""

OPTIONAL_COLUMNS = ("run", "stage", "dataloader", "dataset_size", "world_size")
"""Columns the leaderboard uses when present."""

WRITTEN_COLUMNS = (
    "run",
    "stage",
    "dataloader",
    "case_id",
    "class_index",
    "class",
    "metric",
    "score",
    "predicted_index",
    "dataset_size",
    "world_size",
)
"""The columns the evaluation callback writes: the required and optional ones plus context.

Segmentation: one row per (run, stage, case, foreground class), metric "dice".
Classification: one row per (run, stage, case), metric "correct", `class` / `class_index` the
target and `predicted_index` the prediction (empty for segmentation).
Both: `dataset_size` the length of the evaluated dataset (empty where it has none) and
`world_size` the number of processes of the run; only process 0 writes, and it records only its
own cases, so a file of a multi-device run lacks the other processes' cases (`dataset_size` shows
it).
"""
