"""The per-case score file: what the evaluation callback writes and the leaderboard reads.

One row per (case, class) with the case's score for that class. Required columns: `case_id`
(string or integer), `class` (string or integer) and `score` (float; NaN or null where the score
is undefined, e.g. Dice of a class absent from both prediction and label; pandas writes NaN as
null). Optional: `run` (integer; rows of several runs are averaged per case and class) and
`stage` (`val` / `test`; only rows of the submission's stage are used).

For segmentation a row is one class's Dice on one scan; for classification a row is one scan,
its true class and a score of 1 (correct) or 0.
"""

FILENAME = "per_case_scores.parquet"
"""The file eva runs of the shipped configs write beside results.json."""

REQUIRED_COLUMNS = ("case_id", "class", "score")
"""Columns every per-case file has."""

OPTIONAL_COLUMNS = ("run", "stage")
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
)
"""The columns the evaluation callback writes: the required and optional ones plus context.

Segmentation: one row per (run, stage, case, foreground class), metric "dice".
Classification: one row per (run, stage, case), metric "correct", `class` / `class_index` the
target and `predicted_index` the prediction (empty for segmentation).
"""
