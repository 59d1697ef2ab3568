"""The typed submission record: the schema's fields, and a lossless round trip of the files."""

import dataclasses
import json

import pytest

from eva_coralbay.leaderboard import LeaderboardError, schema
from eva_coralbay.leaderboard.record import (
    FIELD_NAMES,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    Source,
    Submission,
)
from tests.leaderboard.builders import REPOSITORY_SUBMISSIONS


def test_the_record_has_the_schema_fields() -> None:
    document = schema.load_schema()
    assert set(document["properties"]) == FIELD_NAMES
    assert set(document["required"]) == REQUIRED_FIELDS
    assert set(OPTIONAL_FIELDS) == {"torch_version", "torchmetrics_version"}


def test_every_committed_file_round_trips_byte_for_byte() -> None:
    files = sorted(REPOSITORY_SUBMISSIONS.rglob("*.json"))
    assert len(files) > 50  # entries and their history
    for path in files:
        data = json.loads(path.read_bytes())
        record = Submission.from_json(data, str(path))
        assert record.to_json() == data, path
        assert schema.dump_record(record.to_json()) == path.read_bytes(), path


def test_from_json_builds_what_the_constructor_builds() -> None:
    path = REPOSITORY_SUBMISSIONS / "voco_b" / "btcv.json"
    data = json.loads(path.read_bytes())
    record = Submission.from_json(data)
    expected = Submission(
        **{
            **data,
            "pretraining_datasets": data["pretraining_datasets"],
            "values": None,
            "source": Source(data["source"]["citation"], data["source"]["url"]),
        }
    )
    assert record == expected
    assert hash(record) == hash(expected)
    assert repr(record) == repr(expected)
    assert vars(record).keys() == vars(expected).keys()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.mean = 1.0  # type: ignore[misc]
    # The record does not share the caller's JSON: changing it changes nothing.
    data["mean"] = 0.0
    assert record.mean == expected.mean


def test_run_fields_are_typed_and_written_back_as_json_lists() -> None:
    path = REPOSITORY_SUBMISSIONS / "voco_b" / "btcv.json"
    data = json.loads(path.read_bytes()) | {
        "kind": "run",
        "values": [0.7, 0.8],
        "pretraining_datasets": ["btcv"],
        "source": None,
        "torch_version": "2.6.0",
    }
    record = Submission.from_json(data)
    assert record.values == (0.7, 0.8) and record.pretraining_datasets == ("btcv",)
    assert record.torch_version == "2.6.0" and record.torchmetrics_version is None
    assert record.to_json() == data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"date": None}, r"missing \['date'\]"),
        ({"colour": "blue"}, r"unknown \['colour'\]"),
    ],
)
def test_a_json_object_of_other_keys_is_no_record(change: dict, message: str) -> None:
    data = json.loads((REPOSITORY_SUBMISSIONS / "voco_b" / "btcv.json").read_bytes())
    data |= change
    data = {key: value for key, value in data.items() if value is not None or key != "date"}
    with pytest.raises(LeaderboardError, match=f"^somewhere.json: not a submission.*{message}"):
        Submission.from_json(data, "somewhere.json")
