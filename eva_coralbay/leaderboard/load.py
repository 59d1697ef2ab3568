"""Reading a whole leaderboard folder: every entry and history record, checked."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

from eva_coralbay.leaderboard import ids, schema, table_validation
from eva_coralbay.leaderboard.store import HISTORY, PER_CASE, Store


@dataclasses.dataclass
class Loaded:
    """The records of a leaderboard folder and everything found wrong with them."""

    entries: list[dict[str, Any]]
    """Valid current entries, sorted by model then task."""

    entry_paths: list[pathlib.Path]
    """The file of each entry."""

    history: list[tuple[pathlib.Path, dict[str, Any]]]
    """Valid replaced entries and their files, oldest first per model and task."""

    per_case_files: list[pathlib.Path]
    """Every file in the per-case folders."""

    problems: list[str]
    """Every problem, each naming its file."""


def _scan(
    store: Store, problems: list[str]
) -> tuple[list[pathlib.Path], list[pathlib.Path], list[pathlib.Path]]:
    entries: list[pathlib.Path] = []
    history: list[pathlib.Path] = []
    per_case: list[pathlib.Path] = []
    if not store.submissions.is_dir():
        return entries, history, per_case
    for model in sorted(os.scandir(store.submissions), key=lambda item: item.name):
        path = pathlib.Path(model.path)
        if not model.is_dir():
            problems.append(f"{path}: unexpected file (submissions/ holds one folder per model)")
            continue
        if not ids.is_slug(model.name):
            problems.append(f"{path}: folder name is not a valid model id")
            continue
        for item in sorted(os.scandir(model.path), key=lambda item: item.name):
            item_path = pathlib.Path(item.path)
            if item.is_file() and item.name.endswith(".json") and not item.name.startswith("."):
                entries.append(item_path)
            elif item.is_dir() and item.name == HISTORY:
                for task in sorted(item_path.iterdir()):
                    history.extend(sorted(task.glob("*.json")) if task.is_dir() else [task])
            elif item.is_dir() and item.name == PER_CASE:
                per_case.extend(sorted(item_path.iterdir()))
            else:
                problems.append(f"{item_path}: unexpected file or folder")
    return entries, history, per_case


def _parse(paths: list[pathlib.Path], problems: list[str]) -> list[tuple[pathlib.Path, Any]]:
    parsed = []
    for path in paths:
        try:
            parsed.append((path, schema.parse_json(path.read_bytes(), str(path))))
        except schema.LeaderboardError as error:
            problems.append(str(error))
        except OSError as error:
            problems.append(f"{path}: cannot read: {error.strerror}")
    return parsed


def _checked(
    parsed: list[tuple[pathlib.Path, Any]], problems: list[str]
) -> list[tuple[pathlib.Path, dict]]:
    suspicious = table_validation.screen([record for _, record in parsed])
    valid = []
    for (path, record), screen_failed in zip(parsed, suspicious, strict=True):
        found = schema.record_problems(record) if screen_failed else []
        if found:
            problems.append(f"{path}: invalid submission:\n" + "\n".join(f"  - {p}" for p in found))
        else:
            valid.append((path, record))
    return valid


def load(store: Store) -> Loaded:
    """Reads and checks every record under `store` (not the per-case files' contents).

    Besides each record's own validity: an entry's file must be `<model_id>/<task_id>.json`,
    a history record's `<model_id>/history/<task_id>/<NNNN>.json`.
    """
    problems: list[str] = []
    entry_files, history_files, per_case_files = _scan(store, problems)
    entries, entry_paths = [], []
    for path, record in _checked(_parse(entry_files, problems), problems):
        if (record["model_id"], record["task_id"]) != (path.parent.name, path.stem):
            problems.append(
                f"{path}: holds model {record['model_id']!r} on task {record['task_id']!r}; "
                f"the file must be {record['model_id']}/{record['task_id']}.json"
            )
            continue
        entries.append(record)
        entry_paths.append(path)
    history = []
    for path, record in _checked(_parse(history_files, problems), problems):
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
        history.append((path, record))
    return Loaded(entries, entry_paths, history, per_case_files, problems)
