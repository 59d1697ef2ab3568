"""The typed submission record that the leaderboard's modules pass around instead of dicts."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from eva_coralbay.leaderboard.errors import LeaderboardError

Kind = Literal["run", "reported"]


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a published (`reported`) number was copied from."""

    citation: str
    url: str | None


@dataclasses.dataclass(frozen=True)
class Submission:
    """One result of one model on one task: a submission file's content, typed.

    `submission.schema.json` validates the files (`schema.check_record`); this record is what
    code passes along once a file (or a new entry) is valid. The fields are the schema's, in its
    order; see docs/leaderboard.md for their meaning.
    """

    schema_version: int
    kind: Kind
    model_id: str
    display_name: str
    registry_name: str | None
    parameters: int | None
    embedding_dim: int | None
    pretraining_datasets: tuple[str, ...] | None
    weights_source: str | None
    weights_sha256: str | None
    task_id: str
    metric: str
    eva_metric_key: str | None
    stage: str | None
    mean: float
    stdev: float | None
    values: tuple[float, ...] | None
    per_case_file: str | None
    per_case_sha256: str | None
    eva_version: str | None
    plugin_version: str | None
    protocol_hash: str | None
    run_id: str | None
    source: Source | None
    date: str
    torch_version: str | None = None
    """Optional in the schema: absent from entries written before it was recorded."""
    torchmetrics_version: str | None = None
    """Optional in the schema, as `torch_version`."""

    @property
    def spread(self) -> float | None:
        """The standard deviation over the runs where there are two or more, else None.

        One run has no spread: its stored 0 (as eva's recorder writes it) is not shown.
        """
        return self.stdev if self.values is not None and len(self.values) > 1 else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "submission") -> Submission:
        """The record of a JSON object that `schema.check_record` accepts.

        Only the keys are checked here; the schema is the validator of the values.

        Args:
            data: The parsed JSON object.
            where: The file or input it came from, for the error message.

        Raises:
            LeaderboardError: When a required key is missing or a key is unknown.
        """
        fields = dict(data)
        if fields.keys() != FIELD_NAMES:
            missing = sorted(REQUIRED_FIELDS - fields.keys())
            unknown = sorted(fields.keys() - FIELD_NAMES)
            if missing or unknown:
                raise LeaderboardError(
                    f"{where}: not a submission record (missing {missing}, unknown {unknown})"
                )
            for name in OPTIONAL_FIELDS:
                fields.setdefault(name, None)
        for name in ("pretraining_datasets", "values"):
            if fields[name] is not None:
                fields[name] = tuple(fields[name])
        source = fields["source"]
        if source is not None:
            fields["source"] = Source(source["citation"], source["url"])
        # A build reads tens of thousands of records: filling the instance's fields directly
        # takes half the time of the generated __init__ (`object.__setattr__` per field of a
        # frozen class), and `fields` holds exactly the fields, converted as __init__ expects.
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", fields)
        return record

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the record, as the schema describes it.

        The optional version fields are left out when None, as in the files written before
        they existed, so `Submission.from_json(data).to_json() == data` for every valid file.
        """
        data = {name: getattr(self, name) for name in FIELD_NAMES_IN_ORDER}
        for name in OPTIONAL_FIELDS:
            if data[name] is None:
                del data[name]
        for name in ("pretraining_datasets", "values"):
            if data[name] is not None:
                data[name] = list(data[name])
        if self.source is not None:
            data["source"] = {"citation": self.source.citation, "url": self.source.url}
        return data

    def replace(self, **changes: Any) -> Submission:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


FIELD_NAMES_IN_ORDER = tuple(field.name for field in dataclasses.fields(Submission))
FIELD_NAMES = frozenset(FIELD_NAMES_IN_ORDER)
"""Every field of a record (the schema's properties)."""

OPTIONAL_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(Submission)
    if field.default is not dataclasses.MISSING
)
"""Fields a valid file may lack (the schema's properties that are not required)."""

REQUIRED_FIELDS = FIELD_NAMES - set(OPTIONAL_FIELDS)


def field_rows(records: Iterable[Submission]) -> list[dict[str, Any]]:
    """Each record's fields as a dict, for building a table (`pandas.DataFrame.from_records`).

    The dicts are the records' own (no copy, so 30,000 cost nothing): read them, never change
    them.
    """
    return [vars(record) for record in records]


History = Sequence[tuple[pathlib.Path, Submission]]
"""Replaced entries and their files under `submissions/<model>/history/`."""
