"""Submitting: an eva output folder (or a published number) becomes a validated entry."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import pathlib
from typing import Any

import eva_coralbay
from eva_coralbay import _io
from eva_coralbay.leaderboard import case_scores, eva_run, ids, protocol, schema, variants
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.record import Source, Submission
from eva_coralbay.leaderboard.store import Store, WriteResult


@dataclasses.dataclass(frozen=True)
class ModelDetails:
    """What a submitter may say about the model; None means "not given"."""

    display_name: str | None = None
    parameters: int | None = None
    embedding_dim: int | None = None
    pretraining_datasets: list[str] | None = None
    weights_source: str | None = None
    weights_sha256: str | None = None

    @classmethod
    def from_card(cls, path: pathlib.Path) -> ModelDetails:
        """Reads a model card: a JSON object with any of this class's fields.

        Raises:
            LeaderboardError: When the file is malformed or has unknown fields.
        """
        try:
            text = path.read_bytes()
        except OSError as error:
            raise LeaderboardError(f"{path}: cannot read: {error.strerror}") from None
        card = schema.parse_json(text, str(path))
        if not isinstance(card, dict):
            raise LeaderboardError(f"{path}: a model card must be a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(card) - known)
        if unknown:
            raise LeaderboardError(
                f"{path}: unknown model card field(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**card)

    def merged_over(self, base: ModelDetails) -> ModelDetails:
        """Returns these details with the gaps filled from `base`."""
        return ModelDetails(
            **{
                field.name: value
                if (value := getattr(self, field.name)) is not None
                else getattr(base, field.name)
                for field in dataclasses.fields(self)
            }
        )

    def as_record_fields(self, model_id: str) -> dict[str, Any]:
        """The record's model fields; pretraining datasets sorted and unique.

        Args:
            model_id: The model's id: the display name when none is given.
        """
        fields = dataclasses.asdict(self)
        fields["display_name"] = self.display_name or model_id
        if self.pretraining_datasets is not None:
            fields["pretraining_datasets"] = tuple(sorted(set(self.pretraining_datasets)))
        return fields


def today() -> str:
    """Today's date (UTC) as YYYY-MM-DD."""
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, read from its metadata (no import)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclasses.dataclass(frozen=True)
class SubmitResult:
    """What a submit did: the entry written and where it came from."""

    record: Submission
    """The entry as written."""
    write: WriteResult
    results_path: pathlib.Path | None
    inferred: tuple[str, ...]
    """Which of model and task were inferred rather than given."""


def submit_run(
    path: pathlib.Path,
    root: pathlib.Path,
    *,
    model_id: str | None = None,
    task_id: str | None = None,
    stage: str | None = None,
    details: ModelDetails | None = None,
    per_case_path: pathlib.Path | None = None,
    replace: bool = False,
    date: str | None = None,
) -> SubmitResult:
    """Submits one eva session to the leaderboard at `root`.

    Args:
        path: results.json, its session folder, or an OUTPUT_ROOT holding one session.
        root: The leaderboard folder; its tasks are the built-in ones plus its tasks.yaml's.
        model_id: The model id; inferred from the config's `ModelFromRegistry` when None.
        task_id: The task id; inferred from the config's dataset classes when None. A run on a
            subset of the labels (the config's `train_cases` / `train_samples_per_class`) is
            entered as the task's variant `<task>@<count>`; a variant given here must match.
        stage: `val` or `test`; by default the test stage when results.json has the metric there.
        details: What is known about the model (display name, parameters, ...).
        per_case_path: A per-case score file; by default `per_case_scores.parquet` beside
            results.json when present.
        replace: Whether an existing entry may be replaced (it is kept in the history).
        date: The entry's date; today (UTC) by default.

    Returns:
        The written entry.

    Raises:
        LeaderboardError: On any bad input, naming the file; nothing is written then.
    """
    store = Store(root)
    run = eva_run.read_run(path)
    where = str(run.results_path)
    inferred = []
    labelled = eva_run.labelled_count(run)
    if task_id is None:
        task_id = eva_run.infer_task(run, store.registry)
        inferred.append("task")
    base_id, given_count = variants.split(task_id)
    if given_count is not None and given_count != labelled:
        trained_on = "every label" if labelled is None else f"{labelled} labels"
        raise LeaderboardError(
            f"{run.config_path}: task {task_id!r} is the variant trained on {given_count} labels, "
            f"but the run's config trained on {trained_on} (train_cases / "
            "train_samples_per_class)"
        )
    task = store.registry.get(base_id)
    # A run on a subset of the labels is that task's label-efficiency variant (`btcv@5`): its
    # own entry, outside the main ranking.
    entry_task_id = variants.variant_id(task.id, labelled)
    registry_names = eva_run.registry_names(run.config)
    registry_name = registry_names[0] if len(registry_names) == 1 else None
    if model_id is None:
        model_id = eva_run.model_id_from_registry_name(eva_run.infer_registry_name(run))
        inferred.append("model")
    ids.check_slug(model_id, "model id")
    result = eva_run.metric_result(run, task, stage)
    problems = eva_run.metric_config_problems(run.config, task)
    if problems:
        raise LeaderboardError(
            f"{run.config_path}: the metric is not task {task.id!r}'s "
            f"{task.metric_spec.display_name}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    per_case_path = per_case_path or run.per_case_path
    per_case_sha = None
    if per_case_path is not None:
        case_scores.check_file(per_case_path, task.metric_spec)
        per_case_sha = _io.sha256_of(per_case_path)
    record = Submission(
        schema_version=schema.SCHEMA_VERSION,
        kind="run",
        model_id=model_id,
        registry_name=registry_name,
        **(details or ModelDetails()).as_record_fields(model_id),
        task_id=entry_task_id,
        metric=task.metric,
        eva_metric_key=result.key,
        stage=result.stage,
        mean=result.mean,
        stdev=result.stdev,
        values=tuple(result.values),
        per_case_file=f"per_case/{per_case_sha}.parquet" if per_case_sha else None,
        per_case_sha256=per_case_sha,
        eva_version=installed_version("kaiko-eva"),
        plugin_version=eva_coralbay.__version__,
        torch_version=installed_version("torch"),
        torchmetrics_version=installed_version("torchmetrics"),
        protocol_hash=protocol.protocol_hash(run.config),
        run_id=run.run_id,
        source=None,
        date=date or today(),
    )
    schema.check_record(record.to_json(), where, store.registry)
    written = store.write(record, replace=replace, per_case=per_case_path)
    return SubmitResult(written.record, written, run.results_path, tuple(inferred))


def submit_reported(
    root: pathlib.Path,
    *,
    model_id: str,
    task_id: str,
    mean: float,
    citation: str,
    url: str | None,
    details: ModelDetails | None = None,
    replace: bool = False,
    date: str | None = None,
) -> SubmitResult:
    """Records a published number that cites its source (no runs, no stdev, no protocol hash).

    Raises:
        LeaderboardError: On an invalid entry; nothing is written then.
    """
    store = Store(root)
    task = store.registry.get(task_id)
    ids.check_slug(model_id, "model id")
    record = Submission(
        schema_version=schema.SCHEMA_VERSION,
        kind="reported",
        model_id=model_id,
        registry_name=None,
        **(details or ModelDetails()).as_record_fields(model_id),
        task_id=task.id,
        metric=task.metric,
        eva_metric_key=None,
        stage=None,
        mean=mean,
        stdev=None,
        values=None,
        per_case_file=None,
        per_case_sha256=None,
        eva_version=None,
        plugin_version=None,
        protocol_hash=None,
        run_id=None,
        source=Source(citation, url),
        date=date or today(),
    )
    schema.check_record(record.to_json(), f"reported entry {model_id}/{task_id}", store.registry)
    written = store.write(record, replace=replace)
    return SubmitResult(written.record, written, None, ())
