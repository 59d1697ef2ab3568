"""The submission record: its JSON Schema, the checks beyond it, and its file format."""

from __future__ import annotations

import datetime
import functools
import json
import math
import pathlib
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from eva_coralbay.leaderboard import tasks, variants
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.record import Submission

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

SCHEMA_VERSION = 1
"""The version written into every new submission."""

SCHEMA_FILE = "submission.schema.json"
"""The JSON Schema file shipped inside this package."""

MODEL_FIELDS = (
    "display_name",
    "registry_name",
    "parameters",
    "embedding_dim",
    "pretraining_datasets",
    "weights_source",
    "weights_sha256",
)
"""Fields that describe the model; they must agree across all of a model's submissions."""

CONSISTENCY_TOLERANCE = 1e-6
"""How far `mean` and `stdev` may be from the values recomputed from `values`."""


@functools.cache
def load_schema(name: str = SCHEMA_FILE) -> dict[str, Any]:
    """Returns a JSON Schema shipped inside this package: by default the submission's."""
    text = resources.files("eva_coralbay.leaderboard").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def _is_json_number(checker: Any, value: Any) -> bool:
    # JSON has no NaN or infinity; Python's json module reads them anyway.
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _is_json_integer(checker: Any, value: Any) -> bool:
    # An integer as json reads one: 2.0 (which the draft would accept) would make the
    # leaderboard's integer columns (parameters, embedding_dim) floats.
    return type(value) is int


@functools.cache
def validator(name: str = SCHEMA_FILE) -> Validator:
    """The validator of a shipped schema (the draft it declares), with JSON's numbers.

    Imported here: `jsonschema` costs a tenth of a second to import, which commands that
    validate nothing should not pay.
    """
    import jsonschema.validators

    document = load_schema(name)
    draft = jsonschema.validators.validator_for(document)
    draft.check_schema(document)
    types = draft.TYPE_CHECKER.redefine_many(
        {"number": _is_json_number, "integer": _is_json_integer}
    )
    return jsonschema.validators.extend(draft, type_checker=types)(document)


def schema_errors(record: Any) -> list[str]:
    """Every violation of the JSON Schema, as `<JSON path>: <message>` (`$.values[1]: ...`)."""
    return [f"{error.json_path}: {error.message}" for error in validator().iter_errors(record)]


def record_problems(record: Any, registry: tasks.Registry) -> list[str]:
    """Returns everything wrong with a submission record; empty when it is valid.

    Checks the JSON Schema, then what the registry knows: the task (a variant's task, for a
    label-efficiency variant such as `btcv@5`) and its metric exist,
    every value lies in the metric's range, and mean and stdev agree with the per-run values.

    Args:
        record: The parsed submission.
        registry: The tasks of the leaderboard the record belongs to.
    """
    if isinstance(record, dict) and record.get("schema_version") not in (None, SCHEMA_VERSION):
        return [
            f"schema_version {record.get('schema_version')!r} is not supported (this "
            f"eva-coralbay reads version {SCHEMA_VERSION}); upgrade eva-coralbay"
        ]
    problems = schema_errors(record)
    if problems or not isinstance(record, dict):
        return problems
    try:
        task = registry.get(variants.base_task(record["task_id"]))
    except LeaderboardError as error:
        return [str(error)]
    if record["metric"] != task.metric:
        return [
            f"metric {record['metric']!r} is not the metric of task {task.id!r} ({task.metric!r})"
        ]
    metric = task.metric_spec
    values = record["values"] or []
    for name, value in [("mean", record["mean"])] + [
        (f"values[{index}]", value) for index, value in enumerate(values)
    ]:
        if not metric.lower <= value <= metric.upper:
            problems.append(
                f"{name} = {value!r} is outside the range of {metric.id} "
                f"[{metric.lower}, {metric.upper}]"
            )
    if values and not problems:
        expected_mean, expected_stdev = mean_and_stdev(values)
        if abs(record["mean"] - expected_mean) > CONSISTENCY_TOLERANCE:
            problems.append(f"mean {record['mean']!r} is not the mean of values ({expected_mean})")
        if abs(record["stdev"] - expected_stdev) > CONSISTENCY_TOLERANCE:
            problems.append(
                f"stdev {record['stdev']!r} is not the sample stdev of values ({expected_stdev})"
            )
    if (record["per_case_file"] is None) != (record["per_case_sha256"] is None):
        problems.append("per_case_file and per_case_sha256 must be given together")
    elif (
        record["per_case_file"] is not None
        and record["per_case_sha256"] not in (record["per_case_file"])
    ):
        problems.append("per_case_file must be named after its per_case_sha256")
    if record["eva_metric_key"] is not None and record["stage"] is not None:
        expected_key = f"{record['stage']}/{task.eva_metric}"
        if record["eva_metric_key"] != expected_key:
            problems.append(
                f"eva_metric_key {record['eva_metric_key']!r} is not {expected_key!r}, the key "
                f"of task {task.id!r}"
            )
    try:
        datetime.date.fromisoformat(record["date"])
    except ValueError:
        problems.append(f"date {record['date']!r} is not a calendar date (YYYY-MM-DD)")
    return problems


def check_record(record: Any, where: str, registry: tasks.Registry) -> dict[str, Any]:
    """Returns `record` when it is valid.

    Args:
        record: The parsed submission.
        where: The file (or input) it came from, for the error message.
        registry: The tasks of the leaderboard the record belongs to.

    Raises:
        LeaderboardError: Listing every problem, prefixed by `where`.
    """
    problems = record_problems(record, registry)
    if problems:
        raise LeaderboardError(
            f"{where}: invalid submission:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )
    return record


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(text: str | bytes, where: str) -> Any:
    """Parses strict JSON (no NaN or Infinity).

    Raises:
        LeaderboardError: Naming `where` and the position of the error.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise LeaderboardError(f"{where}: malformed JSON: {error}") from None


def read_record(path: pathlib.Path, registry: tasks.Registry) -> Submission:
    """Reads and validates one submission file against the tasks of its leaderboard.

    Raises:
        LeaderboardError: When the file is unreadable, malformed or invalid.
    """
    try:
        text = path.read_bytes()
    except OSError as error:
        raise LeaderboardError(f"{path}: cannot read: {error.strerror}") from None
    record = check_record(parse_json(text, str(path)), str(path), registry)
    return Submission.from_json(record, str(path))


def dump_record(record: Mapping[str, Any]) -> bytes:
    """Returns the canonical file content of a record: sorted keys, 2-space indent, newline."""
    return (json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def mean_and_stdev(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value), as eva's recorder has them."""
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1))


def is_finite_number(value: Any) -> bool:
    """Whether `value` is an int or float (not bool) other than NaN and infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
