"""From validated records to the leaderboard's tables, vectorised with pandas."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard import case_scores, robustness_board, schema, stats, tasks, variants
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.record import Submission, field_rows
from eva_coralbay.leaderboard.robustness_board import RobustnessSubmission
from eva_coralbay.leaderboard.store import Store

ENTRY_COLUMNS = (
    "model_id",
    "display_name",
    "parameters",
    "embedding_dim",
    "pretraining_datasets",
    "task_id",
    "kind",
    "metric",
    "stage",
    "mean",
    "stdev",
    "n_runs",
    "protocol_hash",
    "eva_version",
    "plugin_version",
    "run_id",
    "per_case_file",
    "per_case_sha256",
    "source_citation",
    "source_url",
    "date",
    "task_type",
    "synthetic",
    "contaminated",
    "rank",
    "best",
    "tied_with_best",
    "p_value_vs_best",
)
"""The columns of `leaderboard.parquet`, one row per current entry."""


LABEL_EFFICIENCY_COLUMNS = (
    "task_id",
    "model_id",
    "display_name",
    "labels",
    "entry_task_id",
    "kind",
    "mean",
    "stdev",
)
"""A point of a label-efficiency curve: `labels` is the count of labels (training cases, or
training samples per class for a probe), None at the full-label point (`entry_task_id` is the
task itself there, the variant `<task>@<labels>` elsewhere)."""

ROBUSTNESS_COLUMNS = (
    "model_id",
    "display_name",
    "registry_name",
    "task_id",
    "n_scans",
    "date",
    "perturbation",
    "kind",
    "mean_cosine",
    "min_cosine",
    "probe_accuracy_change",
)
"""A perturbation of a model's robustness record (`robustness_board`)."""


@dataclasses.dataclass(frozen=True)
class Board:
    """Everything the renderers need."""

    tasks: list[tasks.Task]
    """Tasks with at least one entry, in registry order."""

    scored_tasks: list[tasks.Task]
    """Tasks the overall means and ranks use: the real ones (synthetic only if nothing else)."""

    models: pd.DataFrame
    """One row per model (index `model_id`) in leaderboard order: details and overall scores."""

    entries: pd.DataFrame
    """One row per entry (`ENTRY_COLUMNS`), by task then leaderboard order."""

    registry: tasks.Registry
    """Every task the leaderboard knows (the built-in ones and its tasks.yaml's)."""

    case_scores: dict[tuple[str, str], pd.DataFrame] = dataclasses.field(default_factory=dict)
    """The case x class scores of every entry with a per-case file, by (model id, task id)."""

    label_efficiency: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=list(LABEL_EFFICIENCY_COLUMNS))
    )
    """The label-efficiency curves (`LABEL_EFFICIENCY_COLUMNS`): one row per point, by task,
    model (leaderboard order) and labels, each curve ending with its full-label entry."""

    robustness: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=list(ROBUSTNESS_COLUMNS))
    )
    """The robustness records (`ROBUSTNESS_COLUMNS`): one row per model and perturbation, by
    model (leaderboard order, then id) and perturbation (kind, then name)."""


def _model_details(frame: pd.DataFrame) -> pd.DataFrame:
    details = frame[["model_id", *schema.MODEL_FIELDS]].copy()
    details["pretraining_datasets"] = details["pretraining_datasets"].map(
        lambda value: None if value is None else tuple(value)
    )
    grouped = details.groupby("model_id", sort=True)
    conflicting = grouped.nunique(dropna=True).gt(1)
    if conflicting.to_numpy().any():
        problems = [
            f"model {model!r}: entries disagree on {', '.join(conflicting.columns[row])}"
            for model, row in zip(conflicting.index, conflicting.to_numpy(), strict=True)
            if row.any()
        ]
        raise LeaderboardError("inconsistent model details:\n" + "\n".join(problems))
    known = grouped.first()
    return known.astype(object).where(known.notna(), None)


def _contamination(
    models: pd.DataFrame, board_tasks: Sequence[tasks.Task], registry: tasks.Registry
) -> pd.DataFrame:
    """Model x task: True (saw the task's images), False, or None (pretraining undeclared)."""
    flags_of: dict[Any, list[bool | None]] = {None: [None] * len(board_tasks)}
    rows = []
    for pretraining in models["pretraining_datasets"]:
        if pretraining not in flags_of:
            flags_of[pretraining] = [
                registry.is_contaminated(task, pretraining) for task in board_tasks
            ]
        rows.append(flags_of[pretraining])
    return pd.DataFrame(
        rows, index=models.index, columns=[task.id for task in board_tasks], dtype=object
    )


def aggregate(
    records: Sequence[Submission],
    store: Store,
    robustness: Sequence[RobustnessSubmission] = (),
) -> Board:
    """Builds the tables from valid entries (one per model and task).

    The label-efficiency variants (`btcv@5`) among `records` go to their own view only: the
    means, ranks and ties are of the full-label entries.

    Args:
        records: The current entries.
        store: The leaderboard folder (its tasks, and its per-case score files).
        robustness: The current robustness records.

    Raises:
        LeaderboardError: When there is no full-label entry, a model's entries disagree on its
            details, or a per-case file cannot be read.
    """
    records, subsets = variants.partition(records)
    if not records:
        raise LeaderboardError(
            f"{store.submissions}: no full-label entries (only label-efficiency variants); "
            "the leaderboard ranks full-label entries and shows the variants beside them"
        )
    frame = pd.DataFrame.from_records(field_rows(records), columns=list(load_columns()))
    present = set(frame["task_id"].unique())
    registry = store.registry
    board_tasks = [task for task in registry if task.id in present]
    scored = [task for task in board_tasks if not task.synthetic] or board_tasks
    models = _model_details(frame)
    means = frame.pivot(index="model_id", columns="task_id", values="mean")
    means = means.reindex(index=models.index, columns=[task.id for task in board_tasks])
    signs = pd.Series(
        [1.0 if task.direction == "higher" else -1.0 for task in board_tasks], index=means.columns
    )
    signed = means.astype(float) * signs
    ranks = signed.rank(axis=0, ascending=False, method="average")
    contamination = _contamination(models, board_tasks, registry)
    models = models.join(_overall(models, signed * signs, ranks, contamination, scored))
    models = models.sort_values(
        ["n_tasks", "mean_rank", "mean_all"], ascending=[False, True, False], kind="stable"
    )
    entries = _entries(frame, models, board_tasks, ranks, contamination)
    # idxmax takes the first best model in leaderboard order; "best" marks every equal one.
    signed = signed.reindex(index=models.index)
    best_value = entries["task_id"].map(signed.max(axis=0))
    entries["best"] = (entries["mean"].astype(float) * entries["task_id"].map(signs)).eq(best_value)
    scores = _case_scores(entries, store)
    entries = _ties(entries, signed.idxmax(axis=0), scores, registry)
    return Board(
        board_tasks,
        scored,
        models,
        entries.loc[:, list(ENTRY_COLUMNS)],
        registry,
        scores,
        _label_efficiency(subsets, models, entries, registry),
        _robustness(robustness, models),
    )


def _model_order(models: pd.DataFrame, model_ids: Sequence[str]) -> list[str]:
    """`model_ids` in leaderboard order; models not on the board after them, by id."""
    position = {model: index for index, model in enumerate(models.index)}
    return sorted(set(model_ids), key=lambda model: (position.get(model, len(position)), model))


def _label_efficiency(
    subsets: Sequence[Submission],
    models: pd.DataFrame,
    entries: pd.DataFrame,
    registry: tasks.Registry,
) -> pd.DataFrame:
    """The label-efficiency curves, one per (task, model) with a variant entry.

    Each curve ends with the model's full-label entry on the task, where it has one.
    """
    columns = list(LABEL_EFFICIENCY_COLUMNS)
    if not subsets:
        return pd.DataFrame(columns=columns)
    names = dict(zip(models.index, models["display_name"], strict=True))
    full = {
        (model, task): (kind, mean, stdev if n_runs is not None and n_runs > 1 else None)
        for model, task, kind, mean, stdev, n_runs in zip(
            entries["model_id"],
            entries["task_id"],
            entries["kind"],
            entries["mean"],
            entries["stdev"],
            entries["n_runs"].astype(object).where(entries["n_runs"].notna(), None),
            strict=True,
        )
    }
    rows = []
    curves = sorted({(variants.base_task(r.task_id), r.model_id) for r in subsets})
    for record in subsets:
        task_id, labels = variants.split(record.task_id)
        name = names.get(record.model_id, record.display_name)
        point = (record.kind, record.mean, record.spread)
        rows.append((task_id, record.model_id, name, labels, record.task_id, *point))
    for task_id, model in curves:
        if (model, task_id) in full:
            name = names.get(model, model)
            rows.append((task_id, model, name, None, task_id, *full[(model, task_id)]))
    model_order = {
        model: index
        for index, model in enumerate(_model_order(models, [model for _, model in curves]))
    }
    rows.sort(
        key=lambda row: (
            registry.position(row[0]),
            model_order[row[1]],
            math.inf if row[3] is None else row[3],
        )
    )
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["labels"] = frame["labels"].astype("Int64")
    frame["stdev"] = frame["stdev"].astype(float)
    return frame


def _robustness(records: Sequence[RobustnessSubmission], models: pd.DataFrame) -> pd.DataFrame:
    """One row per model and perturbation of the robustness records."""
    names = dict(zip(models.index, models["display_name"], strict=True))
    by_model = {record.model_id: record for record in records}
    rows = []
    for model in _model_order(models, list(by_model)):
        record = by_model[model]
        perturbations = sorted(
            record.perturbations,
            key=lambda item: (_kind_position(item.kind), item.name),
        )
        rows += [
            (
                model,
                names.get(model, model),
                record.registry_name,
                record.task_id,
                record.n_scans,
                record.date,
                item.name,
                item.kind,
                item.mean_cosine,
                item.min_cosine,
                item.probe_accuracy_change,
            )
            for item in perturbations
        ]
    frame = pd.DataFrame.from_records(rows, columns=list(ROBUSTNESS_COLUMNS))
    frame["probe_accuracy_change"] = frame["probe_accuracy_change"].astype(float)
    return frame


def _kind_position(kind: str) -> int:
    order = robustness_board.KIND_ORDER
    return order.index(kind) if kind in order else len(order)


def _overall(
    models: pd.DataFrame,
    means: pd.DataFrame,
    ranks: pd.DataFrame,
    contamination: pd.DataFrame,
    scored: list[tasks.Task],
) -> pd.DataFrame:
    """Per model: means over all, segmentation and classification tasks, mean rank, counts."""
    scored_ids = [task.id for task in scored]
    overall = pd.DataFrame(index=models.index)
    overall["mean_all"] = means[scored_ids].mean(axis=1)
    for kind in tasks.TASK_TYPES:
        kind_ids = [task.id for task in scored if task.type == kind]
        overall[f"mean_{kind}"] = means[kind_ids].mean(axis=1) if kind_ids else np.nan
    overall["mean_rank"] = ranks[scored_ids].mean(axis=1)
    overall["n_tasks"] = means[scored_ids].notna().sum(axis=1)
    overall["contaminated_tasks"] = _contaminated_lists(contamination, means, scored_ids)
    overall["contamination_known"] = models["pretraining_datasets"].notna()
    return overall


def _entries(
    frame: pd.DataFrame,
    models: pd.DataFrame,
    board_tasks: list[tasks.Task],
    ranks: pd.DataFrame,
    contamination: pd.DataFrame,
) -> pd.DataFrame:
    """The long table: records plus model details, task type, contamination and rank."""
    # Positions instead of Series.map: mapping 30,000 string keys is several times slower.
    model_position = models.index.get_indexer(frame["model_id"])
    task_position = pd.Index([task.id for task in board_tasks]).get_indexer(frame["task_id"])
    for field in ("display_name", "parameters", "embedding_dim", "pretraining_datasets"):
        frame[field] = pd.Series(models[field].to_numpy()[model_position], index=frame.index)
    task_types = np.array([task.type for task in board_tasks], dtype=object)
    frame["task_type"] = pd.Series(task_types[task_position], index=frame.index)
    frame["synthetic"] = np.array([task.synthetic for task in board_tasks])[task_position]
    frame["n_runs"] = frame["values"].map(lambda values: None if values is None else len(values))
    frame["source_citation"] = frame["source"].map(lambda s: None if s is None else s.citation)
    frame["source_url"] = frame["source"].map(lambda s: None if s is None else s.url)
    keys = pd.MultiIndex.from_arrays([frame["model_id"], frame["task_id"]])
    flags = contamination.stack(future_stack=True).reindex(keys).to_numpy()
    frame["contaminated"] = pd.Series(flags, index=frame.index, dtype=object)
    frame["rank"] = ranks.stack().reindex(keys).to_numpy()
    order = np.lexsort((model_position, task_position))
    return frame.iloc[order].reset_index(drop=True)


def _contaminated_lists(
    contamination: pd.DataFrame, means: pd.DataFrame, scored_ids: list[str]
) -> list[tuple[str, ...]]:
    flags = contamination[scored_ids].eq(True).to_numpy() & means[scored_ids].notna().to_numpy()
    return [tuple(np.asarray(scored_ids)[row]) for row in flags]


def load_columns() -> tuple[str, ...]:
    """The fields of a submission record, in schema order."""
    return tuple(schema.load_schema()["required"])


def _case_scores(frame: pd.DataFrame, store: Store) -> dict[tuple[str, str], pd.DataFrame]:
    """Reads the per-case score file of every entry that has one."""
    with_scores = frame.loc[
        frame["per_case_file"].notna(), ["model_id", "task_id", "per_case_file", "stage"]
    ]
    return {
        (str(model), str(task)): _read_scores(store, model, relative, stage)
        for model, task, relative, stage in with_scores.itertuples(index=False)
    }


def _ties(
    frame: pd.DataFrame,
    best_model: pd.Series,
    scores: dict[tuple[str, str], pd.DataFrame],
    registry: tasks.Registry,
) -> pd.DataFrame:
    """Adds `tied_with_best` and `p_value_vs_best` from the per-case scores."""
    results = []
    by_task: dict[str, dict[str, pd.DataFrame]] = {}
    for (model, task), table in scores.items():
        by_task.setdefault(task, {})[model] = table
    for task_id, task_scores in sorted(by_task.items()):
        best = str(best_model.at[task_id])
        if best not in task_scores or len(task_scores) < 2:
            continue
        metric = registry.get(str(task_id)).metric_spec
        results.append(
            stats.ties_with_best(str(task_id), metric, best, task_scores).assign(task_id=task_id)
        )
    keys = pd.MultiIndex.from_arrays([frame["model_id"], frame["task_id"]])
    if results:
        found = pd.concat(results).set_index(["model_id", "task_id"])
        tied = found["tied"].astype(object).reindex(keys).to_numpy()
        p_values = found["p_value"].reindex(keys).to_numpy()
    else:
        tied, p_values = np.full(len(frame), None, dtype=object), np.full(len(frame), np.nan)
    frame["tied_with_best"] = pd.Series(tied, index=frame.index, dtype=object)
    frame["p_value_vs_best"] = p_values
    return frame


def _read_scores(store: Store, model_id: Any, relative: Any, stage: Any) -> pd.DataFrame:
    path = store.submissions / str(model_id) / str(relative)
    try:
        return case_scores.load_scores(path, None if stage is None else str(stage))
    except (OSError, ValueError, KeyError) as error:
        raise LeaderboardError(f"{path}: cannot read per-case scores ({error})") from None
