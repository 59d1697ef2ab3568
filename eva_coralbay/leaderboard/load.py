"""Reading a whole leaderboard folder: every entry and history record, checked.

Written for tens of thousands of files: plain `os.scandir` strings instead of `pathlib`,
unbuffered `os.read` instead of file objects, orjson, the cyclic garbage collector
paused while the records pile up, and the vectorised screen of `table_validation` instead of a
check per record (records it flags get the authoritative `schema.record_problems`). The JSON
objects are checked; what leaves this module is the typed `record.Submission` of each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from eva_coralbay.leaderboard import ids, schema, table_validation, tasks
from eva_coralbay.leaderboard.record import Submission
from eva_coralbay.leaderboard.store import HISTORY, PER_CASE, Store


@dataclasses.dataclass
class Loaded:
    """The records of a leaderboard folder and everything found wrong with them."""

    entries: list[Submission]
    """Valid current entries, sorted by model then task."""

    entry_paths: list[str]
    """The file of each entry."""

    history: list[tuple[pathlib.Path, Submission]]
    """Valid replaced entries and their files, oldest first per model and task."""

    per_case_files: list[pathlib.Path]
    """Every file in the per-case folders."""

    problems: list[str]
    """Every problem, each naming its file."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _scan(
    store: Store, problems: list[str]
) -> tuple[list[tuple[str, str, str]], list[pathlib.Path], list[pathlib.Path]]:
    """Lists (model folder, file stem, path) of entries, and history and per-case files."""
    entries: list[tuple[str, str, str]] = []
    history: list[pathlib.Path] = []
    per_case: list[pathlib.Path] = []
    if not store.submissions.is_dir():
        return entries, history, per_case
    for model in sorted(os.scandir(store.submissions), key=lambda item: item.name):
        if not model.is_dir():
            problems.append(
                f"{model.path}: unexpected file (submissions/ holds a folder per model)"
            )
            continue
        if not ids.is_slug(model.name):
            problems.append(f"{model.path}: folder name is not a valid model id")
            continue
        for item in sorted(os.scandir(model.path), key=lambda item: item.name):
            name = item.name
            if name.endswith(".json") and not name.startswith(".") and item.is_file():
                entries.append((model.name, name[:-5], item.path))
            elif name == HISTORY and item.is_dir():
                for task in sorted(pathlib.Path(item.path).iterdir()):
                    history.extend(sorted(task.glob("*.json")) if task.is_dir() else [task])
            elif name == PER_CASE and item.is_dir():
                per_case.extend(sorted(pathlib.Path(item.path).iterdir()))
            else:
                problems.append(f"{item.path}: unexpected file or folder")
    return entries, history, per_case


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector (reference counting still frees memory).

    Tens of thousands of small records are only acyclic dicts and lists, yet each allocation
    burst triggers collections that traverse all of them again: a quarter of a build's time.
    Cycles made meanwhile are collected once the collector runs again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_CHUNK = 1 << 16


def read_bytes(path: str) -> bytes:
    """A file's bytes through `os.read`: no file object, usually one read and one EOF read."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(descriptor, _CHUNK):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode(data: bytes) -> Any:
    """Parses strict JSON with orjson (three times faster than the standard library here).

    Raises:
        ValueError: The standard library's message where it refuses the file too (it names
            NaN, for one); else orjson's, for what orjson alone refuses: a lone surrogate
            (which no UTF-8 output could hold) or a number beyond a double.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        _DECODER.decode(data.decode("utf-8"))
        raise


def _parse(paths: list[str], problems: list[str]) -> list[tuple[int, Any, bytes]]:
    """(position, parsed JSON, file bytes) of every readable, well-formed file."""
    parsed = []
    for position, path in enumerate(paths):
        try:
            data = read_bytes(path)
            parsed.append((position, _decode(data), data))
        except OSError as error:
            problems.append(f"{path}: cannot read: {error.strerror}")
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            problems.append(f"{path}: malformed JSON: {error}")
    return parsed


def _checked(
    parsed: list[tuple[int, Any, bytes]],
    paths: list[str],
    problems: list[str],
    registry: tasks.Registry,
) -> list[tuple[int, dict[str, Any]]]:
    """The valid records among `parsed`; a problem for each invalid one."""
    flagged = table_validation.screen([record for _, record, _ in parsed], registry)
    records = [(position, record) for position, record, _ in parsed]
    invalid = set()
    for index in np.flatnonzero(flagged):
        position, _, data = parsed[index]
        # orjson reads integers beyond 64 bits as floats: the authoritative check gets the
        # standard library's reading.
        record = _DECODER.decode(data.decode("utf-8"))
        records[index] = (position, record)
        found = schema.record_problems(record, registry)
        if found:
            invalid.add(int(index))
            problems.append(
                f"{paths[position]}: invalid submission:\n" + "\n".join(f"  - {p}" for p in found)
            )
    return [item for index, item in enumerate(records) if index not in invalid]


def load(store: Store) -> Loaded:
    """Reads and checks every record under `store` (not the per-case files' contents).

    Records are checked against the store's tasks (the built-in ones and its tasks.yaml).
    Besides each record's own validity: an entry's file must be `<model_id>/<task_id>.json`,
    a history record's `<model_id>/history/<task_id>/<NNNN>.json`.
    """
    with collector_paused():
        return _load(store)


def _load(store: Store) -> Loaded:
    problems: list[str] = []
    entry_files, history_files, per_case_files = _scan(store, problems)
    paths = [path for _, _, path in entry_files]
    entries, entry_paths = [], []
    for position, record in _checked(_parse(paths, problems), paths, problems, store.registry):
        model_folder, task_file, path = entry_files[position]
        if record["model_id"] != model_folder or record["task_id"] != task_file:
            problems.append(
                f"{path}: holds model {record['model_id']!r} on task {record['task_id']!r}; "
                f"the file must be {record['model_id']}/{record['task_id']}.json"
            )
            continue
        entries.append(Submission.from_json(record, path))
        entry_paths.append(path)
    history = []
    history_paths = [str(path) for path in history_files]
    for position, record in _checked(
        _parse(history_paths, problems), history_paths, problems, store.registry
    ):
        path = history_files[position]
        model_id, task_id = path.parents[2].name, path.parent.name
        if (record["model_id"], record["task_id"]) != (
            model_id,
            task_id,
        ) or not path.stem.isdigit():
            problems.append(
                f"{path}: a history record must be {record['model_id']}/{HISTORY}/"
                f"{record['task_id']}/<number>.json"
            )
            continue
        history.append((path, Submission.from_json(record, str(path))))
    return Loaded(entries, entry_paths, history, per_case_files, problems)
