"""One job per (model, task): the config, the environment and the output folder of each."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from eva_coralbay import tasks
from eva_coralbay.leaderboard import tasks as leaderboard_tasks
from eva_coralbay.leaderboard import variants
from eva_coralbay.models import preprocessing
from eva_coralbay.tasks.benchmark import Benchmark

CONFIG_VARIABLE = re.compile(r"\$\{oc\.env:([A-Z][A-Z0-9_]*)")
"""How a shipped config reads an environment variable: `${oc.env:NAME, default}`."""

LOCATION_VARIABLES = frozenset(
    {"DATA_ROOT", "OUTPUT_ROOT", "EMBEDDINGS_ROOT", "CORALBAY_CACHE", "TQDM_REFRESH_RATE"}
)
"""Variables that say where things are, not what is computed: left out of a job's fingerprint,
so that moving the data or the output folder does not make a finished task stale."""

MANAGED_VARIABLES = frozenset(
    {"MODEL_NAME", "MODEL_EXTRA_KWARGS", "DATA_ROOT", "OUTPUT_ROOT", "EMBEDDINGS_ROOT"}
)
"""Variables `coralbay evaluate` sets itself from its own options; `--set` may not."""

VARIANT_SEPARATOR = variants.SEPARATOR
"""Joins a task and its label-efficiency variant (the leaderboard's, which boards them)."""

EVA_COMMANDS = {"segmentation": "fit", "classification": "predict_fit"}
"""The eva subcommand of each task type: frozen-encoder segmentation trains a decoder online;
a probe first predicts (embeds) then fits."""

CORALBAY_DEFAULT_FEATURE_SIZE = 48
"""F of `radiology/coralbay`'s published weights and of `coralbay_random` by default."""

EMBEDDING_WIDTH = 24
"""CoralBay's multi-scale embedding has 24·F dimensions."""


class PlanError(ValueError):
    """A sweep that cannot be planned; the message names the option, task or file."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The model under test: a registry name, its weights and keyword arguments."""

    registry_name: str
    checkpoint: str | None = None
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_id: str = ""
    """The folder name and leaderboard id; derived from the name or checkpoint when empty."""

    def resolved_id(self) -> str:
        """The model id: given, else the checkpoint folder's name, else the registry name's."""
        if self.model_id:
            return self.model_id
        if self.checkpoint:
            name = pathlib.PurePath(self.checkpoint.rstrip("/")).name
            return re.sub(r"\.(safetensors|pt|pth|ckpt|bin)$", "", name) or "model"
        return self.registry_name.split("/")[-1]

    def extra_kwargs(self) -> dict[str, Any]:
        """`MODEL_EXTRA_KWARGS`: the keyword arguments plus the checkpoint."""
        extra = dict(self.kwargs)
        if self.checkpoint is not None:
            extra["checkpoint"] = self.checkpoint
        return extra

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in the model's output folder."""
        return {
            "registry_name": self.registry_name,
            "checkpoint": self.checkpoint,
            "kwargs": dict(self.kwargs),
            "model_id": self.resolved_id(),
        }


@dataclasses.dataclass(frozen=True)
class Job:
    """One eva run of one task's config for one model, and where it writes."""

    model_id: str
    task_id: str
    """The task, or its label-efficiency variant (`btcv@5`)."""
    benchmark: Benchmark
    """The task's record (a variant's is its task's): its data's adapter and type."""
    eva_command: str
    """`fit` or `predict_fit`."""
    config: pathlib.Path
    data: pathlib.Path
    env: Mapping[str, str]
    """The config's environment variables for this run (on top of the caller's environment)."""
    folder: pathlib.Path
    """DIR/<model id>/<task id>: eva's output, the log and the job's record."""

    @property
    def scored_task(self) -> leaderboard_tasks.Task:
        """The leaderboard task its results are read as (a variant is scored as its task)."""
        return leaderboard_tasks.task_of(self.benchmark)

    @property
    def output_root(self) -> pathlib.Path:
        """Eva's OUTPUT_ROOT."""
        return self.folder / "eva"

    @property
    def log(self) -> pathlib.Path:
        """The job's combined stdout and stderr."""
        return self.folder / "eva.log"

    def command(self, python: str) -> list[str]:
        """The eva command line with `python` as the interpreter."""
        return [python, "-m", "eva", self.eva_command, "--config", str(self.config)]

    def fingerprint(self) -> str:
        """What the run computes: the config's bytes and every non-location variable.

        Two jobs with the same fingerprint produce the same protocol (and model); a finished
        task whose recorded fingerprint differs was run under another plan.
        """
        protocol_env = {
            key: value for key, value in self.env.items() if key not in LOCATION_VARIABLES
        }
        canonical = json.dumps(
            {
                "config": hashlib.sha256(self.config.read_bytes()).hexdigest(),
                "command": self.eva_command,
                "env": protocol_env,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def config_variables(config: pathlib.Path) -> frozenset[str]:
    """The environment variables a config reads."""
    return frozenset(CONFIG_VARIABLE.findall(config.read_text(encoding="utf-8")))


def select_tasks(
    selection: str, registry: leaderboard_tasks.Registry | None = None
) -> list[Benchmark]:
    """The tasks of `all`, `segmentation`, `classification` or a comma-separated list of ids.

    Only tasks with a config can be evaluated; naming one without is an error that says so,
    and `all` / a type leaves out such tasks and synthetic ones.

    Args:
        selection: What `--tasks` says.
        registry: The tasks to choose from: by default the built-in ones; `coralbay evaluate`
            passes its leaderboard's (the built-in ones plus the root's tasks.yaml).

    Raises:
        PlanError: For an unknown id (with the valid ones) or a task without a config.
    """
    known = registry if registry is not None else leaderboard_tasks.builtin_registry()
    catalogue = {record.id: record for record in known.benchmarks()}
    runnable = [record for record in catalogue.values() if record.config is not None]
    if selection in ("all", *tasks.TASK_TYPES):
        return [
            record
            for record in runnable
            if not record.synthetic and selection in ("all", record.type)
        ]
    chosen = []
    for task_id in (part.strip() for part in selection.split(",") if part.strip()):
        record = catalogue.get(task_id)
        if record is None:
            close = difflib.get_close_matches(task_id, list(catalogue), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PlanError(
                f"--tasks: unknown task {task_id!r}{hint}; valid: all, segmentation, "
                f"classification, {', '.join(record.id for record in runnable)}"
            )
        if record.config is None:
            raise PlanError(
                f"--tasks: {task_id} has no shipped config yet, so it cannot be evaluated; "
                f"runnable: {', '.join(record.id for record in runnable)}"
            )
        if record not in chosen:
            chosen.append(record)
    if not chosen:
        raise PlanError("--tasks: no task selected")
    return chosen


def parse_assignments(assignments: Sequence[str], option: str) -> list[tuple[str | None, str, str]]:
    """Parses `[TASK:]NAME=VALUE` items into (task or None, name, value).

    Raises:
        PlanError: For an item without `=`.
    """
    parsed = []
    for item in assignments:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise PlanError(f"{option} {item!r}: expected [TASK:]NAME=VALUE")
        task_id, colon, name = key.rpartition(":")
        parsed.append((task_id if colon else None, name, value))
    return parsed


def _export_config(model: ModelSpec) -> tuple[pathlib.Path, dict[str, Any]] | None:
    """The `config.json` beside a checkpoint (an export's), or None when there is none.

    Raises:
        PlanError: When the file is not a JSON object.
    """
    if model.checkpoint is None:
        return None
    folder = pathlib.Path(model.checkpoint)
    config_file = folder / "config.json" if folder.is_dir() else folder.parent / "config.json"
    if not config_file.is_file():
        return None
    try:
        values = json.loads(config_file.read_text())
    except ValueError as error:
        raise PlanError(f"{config_file}: not valid JSON ({error})") from error
    if not isinstance(values, dict):
        raise PlanError(f"{config_file}: not a JSON object")
    return config_file, values


def feature_size(model: ModelSpec) -> int | None:
    """F of a CoralBay-family model: its kwargs, else its export's config.json, else 48.

    None for other models (eva's own backbones): their sizes must be given with `--set`.
    """
    if not model.registry_name.startswith("radiology/coralbay"):
        return None
    if "feature_size" in model.kwargs:
        return int(model.kwargs["feature_size"])
    found = _export_config(model)
    if found is not None:
        config_file, values = found
        try:
            return int(values["feature_size"])
        except (ValueError, KeyError, TypeError) as error:
            raise PlanError(f"{config_file}: no readable feature_size ({error})") from error
    return CORALBAY_DEFAULT_FEATURE_SIZE


def checkpoint_profile(model: ModelSpec) -> dict[str, Any] | None:
    """The preprocessing an export's config.json records (it wins over the registry name's)."""
    found = _export_config(model)
    if found is None:
        return None
    config_file, values = found
    try:
        return preprocessing.of_config(values)
    except ValueError as error:
        raise PlanError(f"{config_file}: {error}") from error


def plan(
    model: ModelSpec,
    selected: Sequence[Benchmark],
    *,
    output: pathlib.Path,
    configs_root: pathlib.Path,
    data_root: pathlib.Path | None = None,
    data: Mapping[str, pathlib.Path] | None = None,
    runs: int | None = None,
    assignments: Sequence[str] = (),
    train_cases: Sequence[int | None] = (None,),
    train_samples_per_class: Sequence[int | None] = (None,),
    registry: leaderboard_tasks.Registry | None = None,
) -> list[Job]:
    """One job per selected task.

    Args:
        model: The model under test.
        selected: The tasks (from `select_tasks`).
        output: The sweep folder; each job writes to `output/<model id>/<task id>/`.
        configs_root: The shipped `configs/` folder.
        data_root: Where each task's data is, as `data_root/<task id>/`.
        data: Per-task data folders, over `data_root`.
        runs: `N_RUNS` of every task (the config's own by default).
        assignments: `[TASK:]NAME=VALUE` overrides of config variables; a TASK prefix limits
            one to that task.
        train_cases: The label-efficiency track: one job per count of training cases (None:
            all of them) for every task whose config reads `TRAIN_CASES`; a count's job is the
            task variant `<task>@<count>` (`btcv@5`).
        train_samples_per_class: The same for probes: one job per count of training samples
            of each class for every task whose config reads `TRAIN_SAMPLES_PER_CLASS`
            (`organmnist@5`).
        registry: The task ids `--data` and `--set` may name (by default the built-in ones).

    Raises:
        PlanError: For a task without data, an unknown variable, a variable `evaluate` sets
            itself, or a model whose sizes cannot be derived.
    """
    data = dict(data or {})
    # Settings of catalogue tasks left out of this sweep are ignored (one data map can serve
    # many sweeps); a name outside the catalogue is a typo.
    overrides = parse_assignments(assignments, "--set")
    known = registry if registry is not None else leaderboard_tasks.builtin_registry()
    for option, task_id in [("--data", task_id) for task_id in data] + [
        ("--set", task_id) for task_id, _, _ in overrides if task_id is not None
    ]:
        if task_id not in known:
            close = difflib.get_close_matches(task_id, list(known.ids), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PlanError(f"{option} {task_id}: not a task id{hint}")
    model_id = model.resolved_id()
    features = feature_size(model)
    profile = checkpoint_profile(model)
    jobs = []
    for record in selected:
        assert record.config is not None  # select_tasks keeps only tasks with a config
        config = configs_root / record.config
        if not config.is_file():
            raise PlanError(f"{record.id}: its config {config} is missing")
        variables = config_variables(config)
        if record.id in data:
            task_data = data[record.id]
        elif data_root is not None:
            task_data = data_root / record.id
        else:
            raise PlanError(f"{record.id}: no data given (--data-root or --data {record.id}=PATH)")
        folder = output / model_id / record.id
        env = {
            "MODEL_NAME": model.registry_name,
            "MODEL_EXTRA_KWARGS": json.dumps(model.extra_kwargs(), sort_keys=True),
            "DATA_ROOT": str(task_data),
            "OUTPUT_ROOT": str(folder / "eva"),
            "EMBEDDINGS_ROOT": str(folder / "embeddings"),
            "TASK_ID": record.id,
        }
        if features is not None:
            width = features if record.type == "segmentation" else EMBEDDING_WIDTH * features
            env["IN_FEATURES"] = str(width)
        if profile is not None:
            env["PROFILE"] = _flow_mapping(profile)
        if runs is not None:
            env["N_RUNS"] = str(runs)
        for task_id, name, value in overrides:
            if task_id not in (None, record.id):
                continue
            if name in MANAGED_VARIABLES:
                raise PlanError(
                    f"--set {name}: evaluate sets it from its own options "
                    "(--model, --checkpoint, --model-kwargs, --data-root, --output)"
                )
            if name not in variables:
                if task_id is None:
                    continue  # a sweep-wide setting: checked below against every config
                raise PlanError(_not_read(name, config, record.id, variables))
            env[name] = value
        if "IN_FEATURES" not in env and "IN_FEATURES" in variables:
            raise PlanError(
                f"{record.id}: the width of {model.registry_name}'s features is not known here; "
                "give it with --set IN_FEATURES=N"
            )
        env = {key: value for key, value in env.items() if key in variables}
        variable, counts = _variants(variables, train_cases, train_samples_per_class)
        for count in counts:
            task_id = record.id if count is None else f"{record.id}{VARIANT_SEPARATOR}{count}"
            variant_folder = output / model_id / task_id
            variant_env = dict(env)
            if count is not None and variable is not None:
                variant_env[variable] = str(count)
            for name in ("OUTPUT_ROOT", "EMBEDDINGS_ROOT"):
                if name in variant_env:
                    variant_env[name] = str(variant_folder / pathlib.Path(env[name]).name)
            jobs.append(
                Job(
                    model_id=model_id,
                    task_id=task_id,
                    benchmark=record,
                    eva_command=EVA_COMMANDS[record.type],
                    config=config,
                    data=task_data,
                    env=variant_env,
                    folder=variant_folder,
                )
            )
    read_anywhere: set[str] = set().union(*(config_variables(job.config) for job in jobs))
    for task_id, name, _ in overrides:
        if task_id is None and name not in read_anywhere:
            raise PlanError(_not_read(name, jobs[0].config, jobs[0].task_id, read_anywhere))
    return jobs


def _variants(
    variables: frozenset[str],
    train_cases: Sequence[int | None],
    train_samples_per_class: Sequence[int | None],
) -> tuple[str | None, list[int | None]]:
    """The label-efficiency variable a task's config reads and the counts it is run with.

    Subsets only where the config has the setting: `TRAIN_CASES` (segmentation) or
    `TRAIN_SAMPLES_PER_CLASS` (probes); other tasks run once, on every label.
    """
    for variable, counts in (
        ("TRAIN_CASES", train_cases),
        ("TRAIN_SAMPLES_PER_CLASS", train_samples_per_class),
    ):
        if variable in variables:
            return variable, list(dict.fromkeys(counts)) or [None]
    return None, [None]


def base_task(task_id: str) -> str:
    """The catalogue task of a job's task id: `btcv` for the variant `btcv@5`."""
    return variants.base_task(task_id)


def parse_train_cases(text: str, option: str = "--train-cases") -> list[int | None]:
    """`--train-cases 1,5,all` (or `--train-samples-per-class ...`) as counts (None: all).

    Args:
        text: The option's value.
        option: The option's name, for the error message.

    Raises:
        PlanError: For an item that is not a positive integer or `all`.
    """
    counts: list[int | None] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item.lower() == "all":
            counts.append(None)
        elif item.isdigit() and int(item) > 0:
            counts.append(int(item))
        else:
            raise PlanError(f"{option} {text!r}: {item!r} is not a positive count or 'all'")
    if not counts:
        raise PlanError(f"{option}: no count given")
    return counts


def _not_read(
    name: str, config: pathlib.Path, task_id: str, variables: set[str] | frozenset[str]
) -> str:
    close = difflib.get_close_matches(name, sorted(variables), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"--set {name}: not read by {config.name} ({task_id}){hint}. "
        f"Read: {', '.join(sorted(variables))}"
    )


def _flow_mapping(values: Mapping[str, Any]) -> str:
    """A profile as the configs' `${oc.decode:...}` reads it: a flow mapping without quotes.

    OmegaConf's decoder accepts `{key: value, list: [1, 2]}` but not JSON's quoted strings.

    Raises:
        PlanError: For a value that cannot be written unquoted (a profile never has one).
    """

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(float(value)) if isinstance(value, float) else str(value)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(scalar(item) for item in value) + "]"
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            return value
        raise PlanError(
            f"the checkpoint's preprocessing has a value the configs cannot take: {value!r}"
        )

    return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in sorted(values.items())) + "}"
