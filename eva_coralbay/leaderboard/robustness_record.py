"""The robustness track's record: its type, its JSON Schema, and validated reading and writing.

Torch-free, so the leaderboard can board the records that `coralbay robustness` writes.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from eva_coralbay import _io
from eva_coralbay.leaderboard import schema

RECORD_TYPE = "coralbay-robustness"
"""The `record_type` of a robustness record: not a leaderboard submission, a record of its own."""

SCHEMA_VERSION = 1
"""The version written into every new robustness record."""

SCHEMA_FILE = "robustness.schema.json"
"""The JSON Schema of a robustness record, shipped beside the submissions' schema."""


def record_problems(candidate: Any) -> list[str]:
    """Every way `candidate` violates the schema, as `<JSON path>: <message>`; [] when valid."""
    return [
        f"{error.json_path}: {error.message}"
        for error in schema.validator(SCHEMA_FILE).iter_errors(candidate)
    ]


def write_record(candidate: Mapping[str, Any], path: str | os.PathLike[str]) -> pathlib.Path:
    """Validates a robustness record and writes it atomically as canonical JSON.

    Raises:
        ValueError: Listing every schema violation (nothing is written).
    """
    problems = record_problems(candidate)
    if problems:
        raise ValueError(
            "invalid robustness record:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(candidate, indent=2, sort_keys=True, allow_nan=False) + "\n"
    _io.atomic_write_text(target, text)
    return target


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and validates a robustness record.

    Raises:
        ValueError: When the file is not valid JSON or not a valid record (naming the file).
    """
    try:
        candidate = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read a robustness record ({error})") from None
    problems = record_problems(candidate)
    if problems:
        raise ValueError(f"{path}: invalid robustness record: " + "; ".join(problems))
    return candidate
