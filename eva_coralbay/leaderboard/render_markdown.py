"""The leaderboard's README.md, rendered from the aggregated tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard import stats, tasks
from eva_coralbay.leaderboard.aggregate import Board
from eva_coralbay.leaderboard.metrics import METRICS
from eva_coralbay.leaderboard.record import History, field_rows
from eva_coralbay.leaderboard.variants import FULL_LABELS, count_unit

MISSING = "—"
CONTAMINATED = "†"
TIED = "≈"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(
    header: Sequence[str], align: Sequence[str], rows: list[list[str]] | pd.DataFrame
) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    body = rows.to_numpy().tolist() if isinstance(rows, pd.DataFrame) else rows
    lines.extend("| " + " | ".join(row) + " |" for row in body)
    return "\n".join(lines)


def parameters_text(value: Any) -> str:
    """A parameter count in short form (86.4M, 1.2B), or the missing mark."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(int(value))


def reported_text(mean: pd.Series) -> pd.Series:
    """Published numbers as given: two or three decimals (a third decimal 0 is dropped)."""
    text = mean.map("{:.3f}".format)
    return text.where(~text.str.endswith("0"), text.str[:-1])


def entry_cells(entries: pd.DataFrame, labels: dict[tuple[str, str], str]) -> pd.Series:
    """The table cell of every entry: value, ± stdev or source label, tie and contamination marks.

    Args:
        entries: Rows with `kind`, `mean`, `stdev`, `n_runs`, `best`, `tied_with_best`,
            `contaminated`, `source_citation` and `source_url`.
        labels: The label of each reported source, by (citation, url).
    """
    runs = entries["kind"] == "run"
    stdev = entries["stdev"].astype(float).fillna(0.0)
    spread = entries["n_runs"].astype(float).fillna(0.0) > 1  # one run has no spread to show
    text = entries["mean"].map("{:.3f}".format) + (" ± " + stdev.map("{:.3f}".format)).where(
        spread, ""
    )
    source_keys = zip(entries["source_citation"], entries["source_url"].fillna(""), strict=True)
    label = pd.Series([labels.get(key, "") for key in source_keys], index=entries.index)
    reported = reported_text(entries["mean"].astype(float)) + " (" + label + ")"
    text = text.where(runs, reported)
    text = text.where(~entries["best"].astype(bool), "**" + text + "**")
    text = text + np.where(entries["tied_with_best"].eq(True), " " + TIED, "")
    return text + np.where(entries["contaminated"].eq(True), " " + CONTAMINATED, "")


def source_labels(entries: pd.DataFrame, history: History) -> dict[tuple[str, str], str]:
    """Numbers every cited source (S1, S2, ...) in the order of its citation text."""
    keys = {
        (citation, url or "")
        for citation, url in zip(entries["source_citation"], entries["source_url"], strict=True)
        if isinstance(citation, str)
    }
    keys |= {
        (record.source.citation, record.source.url or "")
        for _, record in history
        if record.source is not None
    }
    return {key: f"S{number}" for number, key in enumerate(sorted(keys), start=1)}


def _number(values: pd.Series, digits: int) -> pd.Series:
    return values.map(lambda value: MISSING if pd.isna(value) else f"{value:.{digits}f}")


def _overall(board: Board) -> str:
    models = board.models
    n_scored = len(board.scored_tasks)
    contamination = np.where(
        ~models["contamination_known"].astype(bool),
        "?",
        models["contaminated_tasks"].map(
            lambda found: f"{CONTAMINATED} " + ", ".join(found) if found else "none"
        ),
    )
    rows = pd.DataFrame(
        {
            "rank": [str(position) for position in range(1, len(models) + 1)],
            "model": models["display_name"].map(lambda name: _escape(str(name))),
            "parameters": models["parameters"].map(parameters_text),
            "mean": _number(models["mean_all"], 3),
            "segmentation": _number(models["mean_segmentation"], 3),
            "classification": _number(models["mean_classification"], 3),
            "mean_rank": _number(models["mean_rank"], 2),
            "tasks": models["n_tasks"].map(lambda n: f"{n}/{n_scored}"),
            "contaminated": contamination,
        }
    )
    header = [
        "#",
        "Model",
        "Parameters",
        "Mean",
        "Mean seg.",
        "Mean cls.",
        "Mean rank",
        "Tasks",
        "Contaminated",
    ]
    return _table(
        header, ["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---"], rows
    )


def _per_type(board: Board, kind: str, cells: pd.Series) -> str | None:
    kind_tasks = [task for task in board.tasks if task.type == kind]
    if not kind_tasks:
        return None
    entries = board.entries.assign(cell=cells)
    entries = entries[entries["task_type"] == kind]
    grid = entries.pivot(index="model_id", columns="task_id", values="cell")
    order = [model for model in board.models.index if model in grid.index]
    grid = grid.reindex(index=order, columns=[task.id for task in kind_tasks]).fillna(MISSING)
    names = board.models.loc[order, "display_name"].map(lambda name: _escape(str(name)))
    grid.insert(0, "model", names.to_numpy())
    metric = METRICS[kind_tasks[0].metric]
    header = ["Model", *[_escape(task.display_name) for task in kind_tasks]]
    title = f"## {kind.capitalize()}: {metric.display_name}"
    return f"{title}\n\n{_table(header, ['---'] + [':---:'] * len(kind_tasks), grid)}"


def _legend(board: Board) -> str:
    metrics_used = sorted({task.metric for task in board.tasks})
    lines = [
        "## How to read this",
        "",
        "- Means are over the tasks a model has results on (column *Tasks*); a model with fewer "
        "tasks is not comparable on its mean. Rows are sorted by the number of tasks, then by "
        "mean rank (rank 1 = best on a task, ties share the average rank), then by mean.",
    ]
    if any(task.synthetic for task in board.tasks):
        lines.append(
            "- Synthetic tasks are marked as such and count in the overall columns only when the "
            "leaderboard has no real task."
        )
    lines += [
        f"- `{MISSING}`: no result. **Bold**: best mean on the task.",
        "- `± s`: standard deviation over eva's runs (`n_runs`; a single run shows its score "
        "alone). `(S1)`: a published number "
        "copied from source S1 (see *Sources*); it has no per-run values and no standard "
        "deviation.",
        f"- `{CONTAMINATED}`: the model was pretrained on images of this task (from the "
        "model's declared pretraining datasets and the task's image sources, see *Tasks*). "
        "`?` in the overall table: the model's pretraining data is not declared.",
        f"- `{TIED}`: not significantly different from the best entry of the task (paired "
        f"bootstrap of per-case scores, {stats.RESAMPLES} resamples, Holm-corrected over the "
        f"task's comparisons, alpha = {stats.ALPHA}). Computed only where the best entry and the "
        "compared entry both submitted per-case scores; other cells carry no tie mark.",
        "- Each model has one entry per task. A newer result for the same model and task "
        "replaces the entry only on purpose (`--replace`); the replaced one is kept in "
        "`submissions/<model>/history/` and listed under *Superseded entries*.",
    ]
    lines += [f"- {METRICS[m].display_name}: {METRICS[m].description}." for m in metrics_used]
    return "\n".join(lines)


def _superseded(
    board: Board,
    history: History,
    labels: dict[tuple[str, str], str],
) -> str | None:
    if not history:
        return None
    names = board.models["display_name"].to_dict()
    plain = board.entries.assign(best=False, tied_with_best=None, contaminated=None)
    current = dict(
        zip(
            zip(board.entries["model_id"], board.entries["task_id"], strict=True),
            entry_cells(plain, labels).to_numpy(),
            strict=True,
        )
    )
    order = {model: position for position, model in enumerate(board.models.index)}
    ordered = sorted(
        history,
        key=lambda item: (
            order.get(item[1].model_id, len(order)),
            board.registry.position(item[1].task_id),
            item[0].name,
        ),
    )
    old = pd.DataFrame.from_records(field_rows(record for _, record in ordered))
    old["source_citation"] = old["source"].map(lambda s: None if s is None else s.citation)
    old["source_url"] = old["source"].map(lambda s: None if s is None else s.url)
    old["n_runs"] = old["values"].map(lambda values: None if values is None else len(values))
    old_cells = entry_cells(
        old.assign(best=False, tied_with_best=None, contaminated=None), labels
    ).to_numpy()
    rows = [
        [
            _escape(str(names.get(record.model_id, record.model_id))),
            _escape(board.registry.get(record.task_id).display_name),
            old_cell if record.kind == "reported" else f"{old_cell} (run {record.run_id})",
            current.get((record.model_id, record.task_id), MISSING),
        ]
        for (_, record), old_cell in zip(ordered, old_cells, strict=True)
    ]
    header = ["Model", "Task", "Replaced entry", "Current entry"]
    return "## Superseded entries\n\n" + _table(header, ["---", "---", ":---:", ":---:"], rows)


def _sources(board: Board, labels: dict[tuple[str, str], str]) -> str:
    entries = board.entries
    rows = []
    for (citation, url), label in sorted(labels.items(), key=lambda item: int(item[1][1:])):
        mask = entries["source_citation"].eq(citation) & entries["source_url"].fillna("").eq(url)
        models = ", ".join(
            _escape(str(board.models.at[model, "display_name"]))
            for model in dict.fromkeys(entries.loc[mask, "model_id"])
        )
        text = f"[{_escape(citation)}]({url})" if url else _escape(citation)
        rows.append([label, text, str(int(mask.sum())), models or MISSING])
    runs = int((entries["kind"] == "run").sum())
    if runs:
        rows.append(["", "eva runs submitted with `coralbay leaderboard submit`", str(runs), ""])
    header = ["Ref", "Source", "Current entries", "Models"]
    return "## Sources\n\n" + _table(header, ["---", "---", "---:", "---"], rows)


def _protocols(board: Board) -> str | None:
    runs = board.entries[board.entries["kind"] == "run"]
    if runs.empty:
        return None
    rows = []
    for task in board.tasks:
        counts = runs.loc[runs["task_id"] == task.id, "protocol_hash"].value_counts(sort=False)
        if counts.empty:
            continue
        hashes = ", ".join(
            f"`{h[:12]}` ({n})" for h, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
        )
        rows.append([_escape(task.display_name), hashes, "yes" if len(counts) == 1 else "**no**"])
    return (
        "## Protocols\n\nThe protocol hash of each run entry (first 12 hex digits, entries in "
        "brackets) covers the resolved eva config minus the model, paths, seeds and speed "
        "settings; entries of a task are strictly comparable when their hashes agree.\n\n"
        + _table(["Task", "Protocol hashes", "One protocol"], ["---", "---", "---"], rows)
    )


def _tasks_table(board: Board) -> str:
    rows = [
        [
            _escape(task.display_name)
            + (" (synthetic)" if task.synthetic and "synthetic" not in task.display_name else ""),
            f"`{task.id}`",
            task.type,
            METRICS[task.metric].display_name + f" (eva `{task.eva_metric}`)",
            ", ".join(task.image_sources),
            f"[{_escape(task.citation)}]({task.url})" if task.url else _escape(task.citation),
        ]
        for task in board.tasks
    ]
    header = ["Task", "Id", "Type", "Metric", "Images from", "Reference"]
    return "## Tasks\n\n" + _table(header, ["---"] * len(header), rows)


LABEL_EFFICIENCY_NOTE = (
    "A task's label-efficiency variants (`btcv@5`: trained on 5 labelled cases; for a probe, 5 "
    "samples per class) are each another protocol, scored on the task's whole validation "
    "split. Read a row as a curve of score against labels ending with the full-label score "
    "(*all*, the entry of the tables above). They stay out of the means and ranks: with few "
    "labels a score depends on which cases were drawn."
)

ROBUSTNESS_NOTE = (
    "Mean cosine similarity, over the record's scans, of each perturbed whole-scan embedding "
    "to the unperturbed one (`coralbay robustness`): 1 means the encoder did not notice the "
    "change. The orientation columns check the preprocessing (RAS and LPS input must give the same "
    "voxels); flips are not meant to leave an embedding unchanged. A cosine is on no task "
    "metric's scale, so the records stay out of the ranking."
)


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One point of a label-efficiency curve."""

    kind: str
    mean: float
    stdev: float | None

    def text(self) -> str:
        """Mean ± stdev over eva's runs; the mean alone for one run or a published number."""
        if self.kind == "run" and self.stdev is not None:
            return f"{self.mean:.3f} ± {self.stdev:.3f}"
        return f"{self.mean:.3f}"


@dataclasses.dataclass(frozen=True)
class CurveGrid:
    """A task's label-efficiency curves as a model x labels table."""

    task: tasks.Task
    counts: list[int | None]
    """The columns: the counts of labels in increasing order, then None (every label)."""
    models: list[tuple[str, str]]
    """The rows: (model id, display name), in leaderboard order."""
    points: dict[tuple[str, int | None], CurvePoint]
    """The cells, by (model id, count); a missing key is a point the model has not submitted."""


def label_efficiency_grids(board: Board) -> list[CurveGrid]:
    """Every task with variants as a model x labels grid, in the board's task order."""
    curves = board.label_efficiency
    grids = []
    for task_id in dict.fromkeys(curves["task_id"]):
        rows = curves.loc[curves["task_id"] == task_id]
        counts = sorted({int(value) for value in rows["labels"] if not pd.isna(value)})
        points = {
            (str(model), None if pd.isna(labels) else int(labels)): CurvePoint(
                str(kind), float(mean), None if pd.isna(stdev) else float(stdev)
            )
            for model, labels, kind, mean, stdev in zip(
                rows["model_id"],
                rows["labels"],
                rows["kind"],
                rows["mean"],
                rows["stdev"],
                strict=True,
            )
        }
        models = list(dict.fromkeys(zip(rows["model_id"], rows["display_name"], strict=True)))
        grids.append(CurveGrid(board.registry.get(str(task_id)), [*counts, None], models, points))
    return grids


def _label_efficiency(board: Board, plot: str | None) -> str | None:
    if board.label_efficiency.empty:
        return None
    sections = ["## Label efficiency", LABEL_EFFICIENCY_NOTE]
    if plot:
        sections.append(f"![Score against labelled training data]({plot})")
    for grid in label_efficiency_grids(board):
        task = grid.task
        header = ["Model", *(FULL_LABELS if count is None else str(count) for count in grid.counts)]
        rows = [
            [
                _escape(str(name)),
                *(
                    point.text() if (point := grid.points.get((model, count))) else MISSING
                    for count in grid.counts
                ),
            ]
            for model, name in grid.models
        ]
        sections.append(
            f"### {_escape(task.display_name)}: {task.metric_spec.display_name} by "
            f"{count_unit(task.type)}\n\n"
            + _table(header, ["---"] + [":---:"] * len(grid.counts), rows)
        )
    return "\n\n".join(sections)


def robustness_grid(board: Board, value: str) -> pd.DataFrame:
    """Model x perturbation (columns in the view's order) of one robustness column."""
    frame = board.robustness
    grid = frame.pivot(index="model_id", columns="perturbation", values=value)
    return grid.reindex(
        index=list(dict.fromkeys(frame["model_id"])),
        columns=list(dict.fromkeys(frame["perturbation"])),
    )


def _robustness(board: Board) -> str | None:
    frame = board.robustness
    if frame.empty:
        return None
    models = frame.drop_duplicates("model_id").set_index("model_id")
    sections = ["## Robustness", ROBUSTNESS_NOTE]
    tables = [("mean_cosine", "Mean cosine to the unperturbed embedding", 3)]
    if frame["probe_accuracy_change"].notna().any():
        tables.append(("probe_accuracy_change", "Change in probe accuracy", 3))
    for value, title, digits in tables:
        grid = robustness_grid(board, value)
        rows = [
            [
                _escape(str(models.at[model, "display_name"])),
                str(models.at[model, "n_scans"]),
                *_number(grid.loc[model], digits).tolist(),
            ]
            for model in grid.index
        ]
        header = ["Model", "Scans", *(f"`{name}`" for name in grid.columns)]
        align = ["---", "---:"] + [":---:"] * len(grid.columns)
        sections.append(f"### {title}\n\n" + _table(header, align, rows))
    return "\n\n".join(sections)


def render(
    board: Board,
    history: History,
    heatmap: str | None,
    curves: str | None = None,
) -> str:
    """Returns the README.md text.

    Args:
        board: The aggregated tables.
        history: Replaced entries and their files.
        heatmap: The heatmap's file name (relative to the README), or None.
        curves: The label-efficiency plot's file name (relative to the README), or None.
    """
    labels = source_labels(board.entries, history)
    cells = entry_cells(board.entries, labels)
    intro = (
        "# 3D radiology leaderboard\n\n"
        "<!-- Generated by `coralbay leaderboard build` from submissions/; do not edit. -->\n\n"
        f"{len(board.models)} models, {len(board.tasks)} tasks, {len(board.entries)} entries. "
        "Frozen encoders evaluated with [eva](https://github.com/kaiko-ai/eva): segmentation by "
        "a trained decoder (Dice), classification by a linear probe (balanced accuracy)."
    )
    sections = [intro]
    if heatmap:
        sections.append(f"![Leaderboard heatmap]({heatmap})")
    sections.append("## Overall\n\n" + _overall(board))
    sections += [_per_type(board, kind, cells) for kind in tasks.TASK_TYPES]
    sections += [_label_efficiency(board, curves), _robustness(board)]
    sections += [
        _legend(board),
        _superseded(board, history, labels),
        _sources(board, labels),
        _protocols(board),
        _tasks_table(board),
        "## Submitting\n\n```bash\n"
        "coralbay leaderboard submit logs/<model>/<task>/<session>   # eva's output folder\n"
        "coralbay leaderboard build\n"
        "coralbay leaderboard validate\n```\n\n"
        "Each command takes `--root DIR`; see `coralbay leaderboard --help`.",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"
