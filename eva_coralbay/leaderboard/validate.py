"""`validate`: every problem of a leaderboard folder at once, for a leaderboard's CI."""

from __future__ import annotations

import collections
import pathlib

from eva_coralbay import _io
from eva_coralbay.leaderboard import build, case_scores, load, robustness_board, store, variants
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.record import Submission


def validate(root: pathlib.Path) -> list[str]:
    """Checks a leaderboard folder; returns every problem found (empty when it is valid).

    Checks the root's tasks.yaml (when it has one), each entry and history record (schema,
    registry, values) against the built-in tasks and the root's own, each robustness record,
    file names against the records, that a model's entries agree on its details, that every
    referenced per-case file exists with its sha256 and valid content, that no per-case file is
    unreferenced, and
    that README.md (when present) is what `build` would write now.
    """
    try:
        folder = store.Store(root)
    except LeaderboardError as error:  # an invalid tasks.yaml: no record can be checked
        return [str(error)]
    if not folder.submissions.is_dir():
        return [f"{folder.submissions}: missing (no leaderboard here; submit to create one)"]
    loaded = load.load(folder)
    problems = list(loaded.problems) + robustness_board.load(folder)[1]
    by_model: dict[str, list[Submission]] = collections.defaultdict(list)
    for record in loaded.entries:
        by_model[record.model_id].append(record)
    for model_id, records in sorted(by_model.items()):
        conflicts = store.model_field_conflicts(records)
        if conflicts:
            problems.append(
                f"{folder.submissions / model_id}: entries disagree on the model's details:\n"
                + "\n".join(f"  - {conflict}" for conflict in conflicts)
            )
    referenced: set[pathlib.Path] = set()
    all_records: list[tuple[str | pathlib.Path, Submission]] = [
        (path, record) for path, record in zip(loaded.entry_paths, loaded.entries, strict=True)
    ]
    all_records += [(path, record) for path, record in loaded.history]
    for path, record in all_records:
        if record.per_case_file is None:
            continue
        file = folder.submissions / record.model_id / record.per_case_file
        if file in referenced:
            continue
        referenced.add(file)
        if not file.is_file():
            problems.append(f"{path}: its per-case file {file} is missing")
            continue
        if _io.sha256_of(file) != record.per_case_sha256:
            problems.append(f"{file}: sha256 differs from per_case_sha256 in {path}")
            continue
        try:
            task = folder.registry.get(variants.base_task(record.task_id))
            case_scores.check_file(file, task.metric_spec)
        except LeaderboardError as error:
            problems.append(str(error))
    problems += [
        f"{file}: per-case file referenced by no entry"
        for file in loaded.per_case_files
        if file not in referenced
    ]
    readme = root / build.README
    if not problems and readme.is_file():
        try:
            outputs, _ = build.render_outputs(root)
        except LeaderboardError as error:
            problems.append(str(error))
        else:
            if readme.read_bytes() != outputs[build.README]:
                problems.append(f"{readme}: out of date; run `coralbay leaderboard build`")
    return problems
