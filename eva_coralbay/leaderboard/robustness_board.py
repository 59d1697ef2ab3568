"""Robustness records as leaderboard submissions of their own type: stored, read, checked.

`coralbay robustness` writes one record per model (`robustness_record`, validated against
`robustness.schema.json`). The leaderboard keeps the current one of each model as
`robustness/<model id>.json` under its root, and the records it replaced as
`robustness/history/<model id>/<NNNN>.json`, under the same lock and atomic writes as the
submissions. They never enter the main ranking: a cosine is on no task metric's scale.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from eva_coralbay._io import atomic_write_bytes
from eva_coralbay.leaderboard import eva_run, ids, robustness_record, schema
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.store import Store, next_history_path

FOLDER = "robustness"
"""The folder of the robustness records under the leaderboard root."""

HISTORY = "history"
"""Replaced records, under `robustness/history/<model id>/`."""

KIND_ORDER = ("window", "spacing", "orientation", "flip")
"""How the view orders the perturbations: by kind in this order, then by name."""


@dataclasses.dataclass(frozen=True)
class PerturbationScore:
    """How one perturbation moved a model's whole-scan embeddings."""

    name: str
    kind: str
    mean_cosine: float
    """The mean over the scans of the cosine to the unperturbed embedding (1: unchanged)."""
    min_cosine: float
    n_scans: int
    probe_accuracy_change: float | None
    """The change of the probe's balanced accuracy under the perturbation (the record's
    `probe.change`), where the record has a probe (scan-labelled tasks)."""


@dataclasses.dataclass(frozen=True)
class RobustnessSubmission:
    """One model's robustness record, as the leaderboard shows it."""

    model_id: str
    registry_name: str
    """The backbone the record measured (its `model`)."""
    checkpoint_sha256: str
    date: str
    task_id: str | None
    """The task whose validation scans were used, or None for scans given directly."""
    n_scans: int
    orientation_identical: bool | None
    perturbations: tuple[PerturbationScore, ...]

    @classmethod
    def from_json(cls, model_id: str, data: Mapping[str, Any]) -> RobustnessSubmission:
        """The submission of a record that `robustness_record.record_problems` accepts."""
        task = data["task"]
        return cls(
            model_id=model_id,
            registry_name=data["model"],
            checkpoint_sha256=data["checkpoint_sha256"],
            date=data["date"],
            task_id=None if task is None else task["id"],
            n_scans=len(data["scans"]),
            orientation_identical=data["orientation_identical"],
            perturbations=tuple(
                PerturbationScore(
                    name=item["name"],
                    kind=item["kind"],
                    mean_cosine=float(item["mean_cosine"]),
                    min_cosine=float(item["min_cosine"]),
                    n_scans=len(item["per_scan"]),
                    probe_accuracy_change=_optional_number((item.get("probe") or {}).get("change")),
                )
                for item in data["perturbations"]
            ),
        )


def _optional_number(value: Any) -> float | None:
    """A finite number as a float; None for anything else (the field is optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def folder(store: Store) -> pathlib.Path:
    """The robustness folder of a leaderboard."""
    return store.root / FOLDER


def record_path(store: Store, model_id: str) -> pathlib.Path:
    """Where a model's current robustness record lives."""
    return folder(store) / f"{model_id}.json"


def read_json(path: pathlib.Path) -> dict[str, Any]:
    """Reads and validates a robustness record file.

    Raises:
        LeaderboardError: When the file is unreadable, not strict JSON or not a valid record,
            naming the file and every problem.
    """
    try:
        text = path.read_bytes()
    except OSError as error:
        raise LeaderboardError(f"{path}: cannot read: {error.strerror}") from None
    data = schema.parse_json(text, str(path))
    problems = robustness_record.record_problems(data)
    if problems:
        raise LeaderboardError(
            f"{path}: invalid robustness record:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return data


@dataclasses.dataclass(frozen=True)
class RobustnessWrite:
    """What a robustness submit did."""

    submission: RobustnessSubmission
    path: pathlib.Path
    replaced: pathlib.Path | None
    """Where the record it replaced was kept, if it replaced one."""


def submit(
    path: pathlib.Path, root: pathlib.Path, *, model_id: str | None = None, replace: bool = False
) -> RobustnessWrite:
    """Adds a `coralbay robustness` record to the leaderboard at `root`.

    Args:
        path: The record (`coralbay robustness --output`).
        root: The leaderboard folder.
        model_id: The model id; by default the last part of the record's `model`, lowercased
            (`radiology/coralbay` -> `coralbay`), as for runs.
        replace: Whether a model's existing record may be replaced (it is kept in the history).

    Raises:
        LeaderboardError: On an invalid record (naming the file), an invalid model id, or an
            existing record without `replace`. Nothing is written then.
    """
    data = read_json(path)
    model_id = model_id or eva_run.model_id_from_registry_name(str(data["model"]))
    ids.check_slug(model_id, "model id")
    store = Store(root)
    target = record_path(store, model_id)
    with store.locked():
        replaced = None
        if target.exists():
            if not replace:
                raise LeaderboardError(
                    f"{target}: model {model_id!r} has a robustness record; pass --replace to "
                    "replace it (the old record is kept in the history)"
                )
            replaced = next_history_path(folder(store) / HISTORY / model_id)
            atomic_write_bytes(replaced, target.read_bytes())
        atomic_write_bytes(target, schema.dump_record(data))
    return RobustnessWrite(RobustnessSubmission.from_json(model_id, data), target, replaced)


def load(store: Store) -> tuple[list[RobustnessSubmission], list[str]]:
    """Every current robustness record of a leaderboard, sorted by model id, and the problems.

    Each problem names its file: an invalid record, a file name that is no model id, or
    anything else in the folder but the history.
    """
    found: list[RobustnessSubmission] = []
    problems: list[str] = []
    directory = folder(store)
    if not directory.is_dir():
        return found, problems
    for item in sorted(os.scandir(directory), key=lambda item: item.name):
        path = pathlib.Path(item.path)
        if item.name == HISTORY and item.is_dir():
            continue
        if not (item.is_file() and path.suffix == ".json" and ids.is_slug(path.stem)):
            problems.append(
                f"{path}: unexpected file or folder ({FOLDER}/ holds <model id>.json records)"
            )
            continue
        try:
            found.append(RobustnessSubmission.from_json(path.stem, read_json(path)))
        except LeaderboardError as error:
            problems.append(str(error))
    return found, problems
