"""A leaderboard root's own tasks: `tasks.yaml`, checked against `tasks.schema.json`."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from eva_coralbay.leaderboard import schema
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.tasks import Benchmark

if TYPE_CHECKING:
    from jsonschema import ValidationError

    from eva_coralbay.leaderboard.tasks import Registry

FILENAME = "tasks.yaml"
"""The file under a leaderboard root that declares the root's own tasks."""

SCHEMA_FILE = "tasks.schema.json"
"""The JSON Schema of that file, shipped inside this package."""

SCHEMA_VERSION = 1
"""The version of the file's format."""


def _parse(path: pathlib.Path) -> tuple[Any, yaml.Node]:
    """The document and its node tree (which knows every value's line).

    Raises:
        LeaderboardError: When the file cannot be read or is not one YAML document.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LeaderboardError(f"{path}: cannot read: {error}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise LeaderboardError(f"{path}{line}: malformed YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise LeaderboardError(f"{path}: malformed YAML: {error}") from None
    finally:
        loader.dispose()
    if node is None:
        raise LeaderboardError(
            f"{path}: empty; declare `schema_version: {SCHEMA_VERSION}` and a list of `tasks` "
            "(docs/leaderboard.md), or remove the file"
        )
    return document, node


def _line(node: yaml.Node, location: Sequence[str | int]) -> int:
    """The line (from 1) of the value at `location` (keys and list indices) in the tree.

    Where the location goes deeper than the tree (a missing key), the deepest node found.
    """
    for step in location:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            found = [value for key, value in node.value if key.value == step]
            if not found:
                break
            node = found[-1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            node = node.value[step]
        else:
            break
    return node.start_mark.line + 1


def _location(error: ValidationError) -> list[str | int]:
    """Where a schema error is: an unexpected key's own line rather than its mapping's."""
    location: list[str | int] = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        location += [key for key in error.instance if key not in known][:1]
    return location


def read(path: pathlib.Path, builtin: Registry) -> tuple[Benchmark, ...]:
    """The tasks `path` declares, in file order; () when there is no such file.

    Args:
        path: A root's tasks.yaml.
        builtin: The built-in tasks, which the file may not redeclare.

    Raises:
        LeaderboardError: Listing every problem as `<file>:<line>: <what is wrong>`.
    """
    if not path.is_file():
        return ()
    document, node = _parse(path)
    problems = [
        (_line(node, _location(error)), f"{error.json_path}: {error.message}")
        for error in schema.validator(SCHEMA_FILE).iter_errors(document)
    ]
    if not problems:
        problems, benchmarks = _records(document["tasks"], node, builtin)
        if not problems:
            return benchmarks
    raise LeaderboardError(
        f"{path}: invalid task declarations (format: docs/leaderboard.md):\n"
        + "\n".join(f"  {path}:{line}: {message}" for line, message in sorted(problems))
    )


def _records(
    entries: list[dict[str, Any]], node: yaml.Node, builtin: Registry
) -> tuple[list[tuple[int, str]], tuple[Benchmark, ...]]:
    """Schema-valid entries as benchmarks, and what the schema cannot check, with lines."""
    from eva_coralbay.leaderboard.tasks import METRIC_OF_TYPE, task_of

    problems: list[tuple[int, str]] = []
    benchmarks = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):

        def line(*location: str, index: int = index) -> int:
            return _line(node, ["tasks", index, *location])

        where = f"$.tasks[{index}]"
        task_id = entry["id"]
        if task_id in builtin:
            problems.append(
                (
                    line("id"),
                    f"{where}.id: {task_id!r} is a built-in task; tasks.yaml adds tasks and "
                    "cannot redefine one: choose another id",
                )
            )
            continue
        if task_id in seen:
            problems.append(
                (
                    line("id"),
                    f"{where}.id: {task_id!r} is declared twice (first on line {seen[task_id]})",
                )
            )
            continue
        seen[task_id] = line("id")
        expected_metric = METRIC_OF_TYPE[entry["type"]]
        if entry.get("metric", expected_metric) != expected_metric:
            problems.append(
                (
                    line("metric"),
                    f"{where}.metric: {entry['metric']!r}, but {entry['type']} tasks are scored "
                    f"with {expected_metric!r}",
                )
            )
        classes = tuple(entry["classes"])
        if entry["type"] == "segmentation" and classes[0] != "background":
            problems.append(
                (
                    line("classes"),
                    f"{where}.classes: a segmentation task's label 0 is 'background', not "
                    f"{classes[0]!r}",
                )
            )
        try:
            benchmark = Benchmark(
                id=task_id,
                title=entry.get("title", entry["name"]),
                display_name=entry["name"],
                type=entry["type"],
                homepage=entry.get("url", ""),
                citation=entry["citation"],
                license=entry.get("license", ""),
                classes=classes,
                image_sources=tuple(entry["image_sources"]),
                eva_datasets=tuple(entry.get("eva_datasets", ())),
                adapter=entry.get("adapter"),
                config=entry.get("config"),
                synthetic=entry.get("synthetic", False),
            )
        except ValueError as error:
            problems.append((line(), f"{where}: {error}"))
            continue
        task = task_of(benchmark)
        for name in task.eva_datasets:
            owner = builtin.for_dataset_class(f"eva.vision.datasets.{name}")
            if owner is not None:
                problems.append(
                    (
                        line("eva_datasets"),
                        f"{where}.eva_datasets: eva's {name} is the built-in task {owner!r}'s",
                    )
                )
        for name in task.coralbay_datasets:
            owner = builtin.for_dataset_class(f"eva_coralbay.data.adapters.{name}")
            if owner is not None:
                problems.append(
                    (
                        line("adapter"),
                        f"{where}.adapter: {name} reads the built-in task {owner!r}; a task of "
                        "your own reads its data with DecathlonFormat (segmentation) or ScanTable "
                        "(scan-level classification)",
                    )
                )
        benchmarks.append(benchmark)
    return problems, tuple(benchmarks)


def dump(entries: Sequence[Mapping[str, object]]) -> str:
    """The text of a tasks.yaml declaring `entries` (each in this file's fields).

    Raises:
        LeaderboardError: When the entries do not satisfy the schema.
    """
    document = {"schema_version": SCHEMA_VERSION, "tasks": [dict(entry) for entry in entries]}
    problems = [
        f"{error.json_path}: {error.message}"
        for error in schema.validator(SCHEMA_FILE).iter_errors(document)
    ]
    if problems:
        raise LeaderboardError("invalid task declarations:\n" + "\n".join(problems))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
