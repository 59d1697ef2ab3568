"""Reading an eva output folder: results.json, the resolved config.yaml and what they imply.

`eva fit` / `eva predict_fit` write `<OUTPUT_ROOT>/<timestamp>_<config hash>/results.json`
(eva's `SessionRecorder`: `{"metrics": {"val": [...], "test": [...]}}`, one dict per dataset
mapping `<stage>/<metric>` to `{"mean", "stdev", "values"}`) and, when run with `--config`,
the config with every `${oc.env:...}` resolved as `config.yaml` beside it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from eva_coralbay.leaderboard import protocol, tasks
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.schema import is_finite_number
from eva_coralbay.tasks import per_case_format

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"
PER_CASE_FILE = per_case_format.FILENAME
"""Per-case, per-class scores the plugin's configs write beside results.json."""

STAGES = ("test", "val")
"""Stages searched for a task's metric, in order of preference."""


@dataclasses.dataclass(frozen=True)
class EvaRun:
    """One eva evaluation session as found on disk."""

    results_path: pathlib.Path
    config_path: pathlib.Path
    results: Mapping[str, Any]
    config: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        """The eva session folder name (`<timestamp>_<config hash>`)."""
        return self.results_path.parent.name

    @property
    def per_case_path(self) -> pathlib.Path | None:
        """The per-case score file beside results.json, if there is one."""
        path = self.results_path.with_name(PER_CASE_FILE)
        return path if path.is_file() else None


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """A task's metric as eva recorded it over the session's runs."""

    stage: str
    key: str
    mean: float
    stdev: float
    values: list[float]


def locate_results(path: pathlib.Path) -> pathlib.Path:
    """Finds the results.json meant by `path`: the file, a session folder or an output root.

    Raises:
        LeaderboardError: When there is none, or several sessions to choose from.
    """
    if path.is_file():
        return path
    if not path.is_dir():
        raise LeaderboardError(f"{path}: no such file or folder")
    if (path / RESULTS_FILE).is_file():
        return path / RESULTS_FILE
    sessions = sorted(path.glob(f"*/{RESULTS_FILE}"))
    if len(sessions) == 1:
        return sessions[0]
    if sessions:
        listing = "\n".join(f"  {session.parent}" for session in sessions)
        raise LeaderboardError(
            f"{path}: holds {len(sessions)} eva sessions; submit one of them:\n{listing}"
        )
    raise LeaderboardError(
        f"{path}: no {RESULTS_FILE} here or in a session folder below (eva writes "
        f"<OUTPUT_ROOT>/<timestamp>_<hash>/{RESULTS_FILE})"
    )


def _read_results(path: pathlib.Path) -> Mapping[str, Any]:
    try:
        # eva writes NaN as a bare `NaN`; read it so that the error can say which run it was.
        results = json.loads(path.read_bytes())
    except OSError as error:
        raise LeaderboardError(f"{path}: cannot read: {error.strerror}") from None
    except ValueError as error:
        raise LeaderboardError(f"{path}: malformed JSON: {error}") from None
    metrics = results.get("metrics") if isinstance(results, dict) else None
    if not isinstance(metrics, dict) or not all(
        isinstance(metrics.get(stage, []), list)
        and all(isinstance(dataset, dict) for dataset in metrics.get(stage, []))
        for stage in STAGES
    ):
        raise LeaderboardError(
            f'{path}: not an eva results file (expected {{"metrics": {{"val": [...], '
            f'"test": [...]}}}})'
        )
    return results


def _read_config(path: pathlib.Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise LeaderboardError(
            f"{path}: missing; eva writes the resolved config beside results.json when run "
            "with --config, and the leaderboard needs it for the protocol hash"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as error:
        raise LeaderboardError(f"{path}: malformed YAML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LeaderboardError(f"{path}: cannot read: {error}") from None
    if not isinstance(config, dict):
        raise LeaderboardError(f"{path}: expected a YAML mapping, got {type(config).__name__}")
    return config


def read_run(path: pathlib.Path) -> EvaRun:
    """Reads the eva session at `path` (see `locate_results`).

    Raises:
        LeaderboardError: When a file is missing, unreadable or malformed.
    """
    results_path = locate_results(path)
    results = _read_results(results_path)
    config_path = results_path.with_name(CONFIG_FILE)
    return EvaRun(results_path, config_path, results, _read_config(config_path))


def metric_result(run: EvaRun, task: tasks.Task, stage: str | None = None) -> MetricResult:
    """Returns the task's metric from results.json: the test stage's when there is one.

    Raises:
        LeaderboardError: When the metric is missing, ambiguous, NaN or null.
    """
    where = run.results_path
    for candidate in (stage,) if stage else STAGES:
        key = f"{candidate}/{task.eva_metric}"
        found = [
            dataset[key] for dataset in run.results["metrics"].get(candidate, []) if key in dataset
        ]
        if len(found) > 1:
            raise LeaderboardError(
                f"{where}: {key} is recorded for {len(found)} datasets; the leaderboard takes a "
                "session with one evaluation dataset per stage"
            )
        if found:
            return _statistics(found[0], key, candidate, where)
    available = sorted(
        name
        for stage_name in STAGES
        for dataset in run.results["metrics"].get(stage_name, [])
        for name in dataset
    )
    looked_for = " or ".join(f"{s}/{task.eva_metric}" for s in ((stage,) if stage else STAGES))
    raise LeaderboardError(
        f"{where}: no {looked_for}, the metric of task {task.id!r}; the file records: "
        f"{', '.join(available) or 'nothing'}"
    )


def _statistics(entry: Any, key: str, stage: str, where: pathlib.Path) -> MetricResult:
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
        raise LeaderboardError(f"{where}: {key} is not of eva's form {{mean, stdev, values}}")
    values = entry["values"]
    if not values:
        raise LeaderboardError(f"{where}: {key} has no values")
    bad = [index for index, value in enumerate(values) if not is_finite_number(value)]
    if bad:
        shown = ", ".join(f"run {index}: {values[index]!r}" for index in bad)
        raise LeaderboardError(
            f"{where}: {key} is not a finite number in {len(bad)} of {len(values)} run(s) "
            f"({shown}); a NaN or null metric cannot be submitted"
        )
    for name in ("mean", "stdev"):
        if not is_finite_number(entry.get(name)):
            raise LeaderboardError(f"{where}: {key}.{name} is {entry.get(name)!r}, not a number")
    return MetricResult(stage, key, float(entry["mean"]), float(entry["stdev"]), values)


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _class_name(node: Mapping[str, Any]) -> str:
    return str(node.get("class_path", "")).rpartition(".")[2]


def registry_names(config: Mapping[str, Any]) -> list[str]:
    """Returns the `model_name`s given to any `ModelFromRegistry` in the config (eva's or ours)."""
    names = {
        str((node.get("init_args") or {}).get("model_name"))
        for node in _walk(config)
        if _class_name(node) == "ModelFromRegistry"
        and (node.get("init_args") or {}).get("model_name") is not None
    }
    return sorted(names)


def dataset_class_paths(config: Mapping[str, Any]) -> list[str]:
    """Returns the class paths of every dataset in `data.init_args.datasets` (all stages)."""
    data = config.get("data")
    datasets = (
        ((data or {}).get("init_args") or {}).get("datasets") if isinstance(data, Mapping) else None
    )
    paths: set[str] = set()
    for specs in (datasets or {}).values() if isinstance(datasets, Mapping) else ():
        for spec in specs if isinstance(specs, list) else [specs]:
            if isinstance(spec, Mapping) and spec.get("class_path"):
                paths.add(str(spec["class_path"]))
    return sorted(paths)


def infer_task(run: EvaRun, registry: tasks.Registry) -> str:
    """Infers the task from the config's dataset classes, else from the output folder name.

    The plugin's configs default OUTPUT_ROOT to `logs/<model>/<task id>` (`TASK_ID` for the
    DecathlonFormat configs), so the folder above the session is the task id when nothing in
    the config identifies the task.

    Args:
        run: The eva session.
        registry: The tasks of the leaderboard it is submitted to.

    Raises:
        LeaderboardError: When the task cannot be told; pass `--task`.
    """
    found = sorted(
        {
            task
            for path in dataset_class_paths(run.config)
            if (task := registry.for_dataset_class(path))
        }
    )
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise LeaderboardError(
            f"{run.config_path}: the datasets belong to several tasks ({', '.join(found)}); "
            "pass --task"
        )
    folder = run.results_path.parent.parent.name
    if folder in registry:
        return folder
    raise LeaderboardError(
        f"{run.config_path}: no dataset class of a registered task "
        f"({', '.join(dataset_class_paths(run.config)) or 'no datasets'}) and the output folder "
        f"{folder!r} is no task id; pass --task"
    )


def labelled_count(run: EvaRun) -> int | None:
    """The label-efficiency subset the run trained on: its count of labels, None for all.

    Read from the config's `train_cases` (segmentation: training cases) or
    `train_samples_per_class` (probes: training samples of each class), as eva resolved
    `TRAIN_CASES` / `TRAIN_SAMPLES_PER_CLASS` into it; `all` or no setting means every label.

    Raises:
        LeaderboardError: When a setting is neither `all` nor a positive integer, or the config
            holds two different counts.
    """
    counts: set[int] = set()
    for node in _walk(run.config):
        for key in sorted(key for key in protocol.LABEL_EFFICIENCY_KEYS if key in node):
            value = node[key]
            text = str(value).strip()
            if value is None or text.lower() == "all":
                continue
            if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
                raise LeaderboardError(
                    f"{run.config_path}: {key} is {value!r}, neither `all` nor a positive integer"
                )
            counts.add(int(text))
    if len(counts) > 1:
        raise LeaderboardError(
            f"{run.config_path}: the datasets train on different label counts "
            f"({', '.join(map(str, sorted(counts)))}); a run is one task variant"
        )
    return counts.pop() if counts else None


def infer_registry_name(run: EvaRun) -> str:
    """Returns the one `ModelFromRegistry` model name in the config.

    Raises:
        LeaderboardError: When there is none or more than one; pass `--model`.
    """
    names = registry_names(run.config)
    if len(names) == 1:
        return names[0]
    detail = f"several ({', '.join(names)})" if names else "no ModelFromRegistry model_name"
    raise LeaderboardError(f"{run.config_path}: {detail}; pass --model")


def model_id_from_registry_name(name: str) -> str:
    """`radiology/coralbay` -> `coralbay`: the last part of a registry name, lowercased."""
    return name.rpartition("/")[2].lower()


def metric_config_problems(config: Mapping[str, Any], task: tasks.Task) -> list[str]:
    """Returns ways the config's metric differs from the task's definition.

    eva's key `DiceScore` must come from a macro Dice without background, and the multiclass
    balanced accuracy (`MulticlassAccuracy`) from `average="macro"`.
    """
    problems = []
    for node in _walk(config):
        name = _class_name(node)
        args = node.get("init_args") or {}
        if task.eva_metric == "DiceScore" and name == "DiceScore":
            if str(args.get("average")) != "macro":
                problems.append(f"DiceScore average is {args.get('average')!r}, not 'macro'")
            if str(args.get("include_background")).lower() != "false":
                problems.append(
                    f"DiceScore include_background is {args.get('include_background')!r}, not false"
                )
        if (
            task.eva_metric == "MulticlassAccuracy"
            and name
            in (
                "MulticlassAccuracy",
                "MulticlassClassificationMetrics",
            )
            and str(args.get("average", "macro")) != "macro"
        ):
            problems.append(
                f"{name} average is {args.get('average')!r}: only 'macro' is balanced accuracy"
            )
    return problems
