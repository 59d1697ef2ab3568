"""Checks and reads per-case score files (format: `eva_coralbay.tasks.per_case_format`).

How a task's number follows from the scores read here is its metric's `statistic`
(`leaderboard.metrics`).
"""

from __future__ import annotations

import collections
import pathlib
from typing import TYPE_CHECKING

from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.metrics import Metric
from eva_coralbay.tasks.per_case_format import REQUIRED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def check_file(path: pathlib.Path, metric: Metric) -> None:
    """Checks a per-case score file's columns and values.

    Raises:
        LeaderboardError: Naming the file and every problem.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read(use_threads=False)
    except (OSError, pa.ArrowException) as error:
        raise LeaderboardError(f"{path}: not a readable parquet file ({error})") from None
    problems = [
        f"missing column {name!r}" for name in REQUIRED_COLUMNS if name not in table.column_names
    ]
    if not problems:
        column = table.column("score")
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            problems.append(f"column 'score' must be numeric, is {column.type}")
        elif table.num_rows == 0:
            problems.append("no rows")
        else:
            # Through Python floats: arrow's `to_numpy` and `cast` import pandas and
            # pyarrow.compute, which would double the time of a submit.
            score = np.asarray(column.to_pylist(), dtype=float)
            finite = score[np.isfinite(score)]
            if np.isinf(score).any():
                problems.append("infinite score(s)")
            elif finite.size and (finite.min() < metric.lower or finite.max() > metric.upper):
                problems.append(
                    f"scores outside [{metric.lower}, {metric.upper}] "
                    f"(min {finite.min()}, max {finite.max()})"
                )
        for name in ("case_id", "class"):
            if table.column(name).null_count:
                problems.append(f"null {name}(s)")
        if "dataset_size" in table.column_names:
            problems += _missing_cases(table)
    if problems:
        raise LeaderboardError(
            f"{path}: invalid per-case score file:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _missing_cases(table: pa.Table) -> list[str]:
    """Evaluations (run, stage, dataloader) that scored fewer distinct cases than their dataset has.

    The evaluation callback records each dataset's size; only process 0 of a multi-device run
    writes, with its own share of the cases, which this catches.
    """
    names = [name for name in ("run", "stage", "dataloader") if name in table.column_names]
    groups = list(zip(*(table.column(name).to_pylist() for name in names), strict=True))
    worlds = (
        table.column("world_size").to_pylist()
        if "world_size" in table.column_names
        else [None] * table.num_rows
    )
    cases: dict[tuple, set] = collections.defaultdict(set)
    sizes: dict[tuple, int] = {}
    world_sizes: dict[tuple, int] = {}
    for group, case, size, world in zip(
        groups or [()] * table.num_rows,
        table.column("case_id").to_pylist(),
        table.column("dataset_size").to_pylist(),
        worlds,
        strict=True,
    ):
        cases[group].add(case)
        if size is not None:
            sizes[group] = max(size, sizes.get(group, 0))
        if world is not None:
            world_sizes[group] = max(world, world_sizes.get(group, 1))
    problems = []
    for group, size in sizes.items():
        if len(cases[group]) >= size:
            continue
        evaluation = ", ".join(f"{name} {value}" for name, value in zip(names, group, strict=True))
        world = world_sizes.get(group, 1)
        reason = (
            f": written by process 0 of a {world}-process run, which records only its own "
            "cases; evaluate on one device"
            if world > 1
            else ""
        )
        problems.append(
            f"{evaluation or 'the evaluation'} scored {len(cases[group])} of the dataset's {size} "
            f"cases, {size - len(cases[group])} missing{reason}"
        )
    return problems


def load_scores(path: pathlib.Path, stage: str | None) -> pd.DataFrame:
    """Reads a per-case file as a case x class table of scores (runs averaged).

    Args:
        path: The parquet file.
        stage: The submission's stage; rows of other stages are dropped when the file has a
            `stage` column.

    Returns:
        A DataFrame indexed by case id (as string), one column per class (as string), NaN
        where a case has no score for a class.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read(use_threads=False)
    if stage is not None and "stage" in table.column_names:
        keep = np.asarray(table.column("stage").to_pylist(), dtype=object) == stage
        table = table.filter(keep)
    cases, case_ids = pd.factorize(
        np.asarray(table.column("case_id").to_pylist(), dtype=object).astype(str), sort=True
    )
    classes, class_ids = pd.factorize(
        np.asarray(table.column("class").to_pylist(), dtype=object).astype(str), sort=True
    )
    score = table.column("score").cast("float64").to_numpy()
    defined = ~np.isnan(score)
    cell = cases * len(class_ids) + classes
    size = len(case_ids) * len(class_ids)
    totals = np.bincount(cell[defined], score[defined], minlength=size)
    counts = np.bincount(cell[defined], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (totals / counts).reshape(len(case_ids), len(class_ids))
    return pd.DataFrame(means, index=pd.Index(case_ids), columns=pd.Index(class_ids))
