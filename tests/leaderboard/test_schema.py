import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from eva_coralbay.leaderboard import LeaderboardError, builtin_registry, schema, table_validation

BUILTIN = builtin_registry()
"""The built-in tasks: every record of these tests is on one."""

SHA = "ab" * 32


def _run_record() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "run",
        "model_id": "coralbay",
        "display_name": "CoralBay",
        "registry_name": "radiology/coralbay",
        "parameters": 72_000_000,
        "embedding_dim": 1152,
        "pretraining_datasets": ["btcv", "lits"],
        "weights_source": "kaiko-ai/coralbay",
        "weights_sha256": SHA,
        "task_id": "btcv",
        "metric": "dice",
        "eva_metric_key": "val/DiceScore",
        "stage": "val",
        "mean": 0.8,
        "stdev": 0.01,
        "values": [0.79, 0.81, 0.8],
        "per_case_file": f"per_case/{SHA}.parquet",
        "per_case_sha256": SHA,
        "eva_version": "0.4.5",
        "plugin_version": "0.1.0",
        "torch_version": "2.14.1",
        "torchmetrics_version": "1.9.0",
        "protocol_hash": "cd" * 32,
        "run_id": "20261127-101500123456_1a2b3c4d",
        "source": None,
        "date": "2026-11-27",
    }


def _reported_record() -> dict[str, Any]:
    record = _run_record()
    record.update(
        kind="reported",
        values=None,
        stdev=None,
        per_case_file=None,
        per_case_sha256=None,
        protocol_hash=None,
        eva_metric_key=None,
        stage=None,
        run_id=None,
        source={"citation": "eva PR #1021", "url": "https://github.com/kaiko-ai/eva/pull/1021"},
    )
    return record


def _set(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.update(changes)


def _delete(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.pop(name)


BAD_RUN_RECORDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "newer schema": _set(schema_version=2),
    "unknown kind": _set(kind="guess"),
    "path-like model id": _set(model_id="../x"),
    "model id with slash": _set(model_id="a/b"),
    "uppercase model id": _set(model_id="CoralBay"),
    "empty model id": _set(model_id=""),
    "missing field": _delete("date"),
    "extra field": _set(comment="hi"),
    "NaN mean": _set(mean=math.nan),
    "infinite mean": _set(mean=math.inf),
    "string mean": _set(mean="0.8"),
    "boolean mean": _set(mean=True),
    "mean out of range": _set(mean=1.5, values=[1.5], stdev=0.0),
    "no values": _set(values=[]),
    "null value": _set(values=[0.8, None]),
    "NaN value": _set(values=[0.8, math.nan]),
    "value out of range": _set(values=[0.8, 1.2, 0.4], mean=0.8),
    "mean inconsistent": _set(mean=0.7),
    "stdev inconsistent": _set(stdev=0.5),
    "negative stdev": _set(stdev=-0.01),
    "unknown metric": _set(metric="auroc"),
    "metric of another task": _set(metric="balanced_accuracy"),
    "unknown task": _set(task_id="btcv2"),
    "zero parameters": _set(parameters=0),
    "fractional parameters": _set(parameters=1.5),
    "boolean parameters": _set(parameters=True),
    "per-case file without sha": _set(per_case_sha256=None),
    "per-case file elsewhere": _set(per_case_file="../../etc/passwd"),
    "per-case file of another sha": _set(per_case_file=f"per_case/{'ef' * 32}.parquet"),
    "short weights sha": _set(weights_sha256="abc"),
    "run without protocol hash": _set(protocol_hash=None),
    "run without values": _set(values=None),
    "eva key of another metric": _set(eva_metric_key="val/MeanIoU"),
    "training stage": _set(stage="train"),
    "impossible date": _set(date="2026-13-45"),
    "date in words": _set(date="yesterday"),
    "uppercase pretraining dataset": _set(pretraining_datasets=["BTCV"]),
    "empty display name": _set(display_name=""),
    "numeric torch version": _set(torch_version=2.6),
    "torchmetrics version as a list": _set(torchmetrics_version=["1.9.0"]),
}

BAD_REPORTED_RECORDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "reported with values": _set(values=[0.8]),
    "reported with stdev": _set(stdev=0.01),
    "reported without source": _set(source=None),
    "source without citation": _set(source={"url": "https://example.org"}),
    "reported with per-case file": _set(per_case_file=f"per_case/{SHA}.parquet"),
}


def test_valid_records_pass() -> None:
    assert schema.record_problems(_run_record(), BUILTIN) == []
    assert schema.record_problems(_reported_record(), BUILTIN) == []
    single_run = _run_record() | {"values": [0.8], "stdev": 0}
    assert schema.record_problems(single_run, BUILTIN) == []
    assert not table_validation.screen(
        [_run_record(), _reported_record(), single_run], BUILTIN
    ).any()


def test_records_from_before_the_library_versions_stay_valid() -> None:
    old = _run_record()
    del old["torch_version"], old["torchmetrics_version"]
    half = _run_record()
    del half["torchmetrics_version"]
    assert (
        schema.record_problems(old, BUILTIN) == [] and schema.record_problems(half, BUILTIN) == []
    )
    mixed = [old, _run_record(), half, _reported_record()]
    assert not table_validation.screen(mixed, BUILTIN).any()
    broken = old | {"torch_version": 2}
    assert table_validation.screen([old, broken], BUILTIN).tolist() == [False, True]


@pytest.mark.parametrize(
    ("make", "mutate"),
    [(_run_record, m) for m in BAD_RUN_RECORDS.values()]
    + [(_reported_record, m) for m in BAD_REPORTED_RECORDS.values()],
    ids=[*BAD_RUN_RECORDS, *BAD_REPORTED_RECORDS],
)
def test_bad_records_are_rejected_by_the_check_and_the_screen(
    make: Callable[[], dict[str, Any]], mutate: Callable[[dict[str, Any]], None]
) -> None:
    record = make()
    mutate(record)
    assert schema.record_problems(record, BUILTIN)
    good = make()
    flagged = table_validation.screen([good, record, copy.deepcopy(good)], BUILTIN)
    assert flagged.tolist() == [False, True, False]


def test_check_record_names_the_source_and_lists_all_problems() -> None:
    record = _run_record() | {"model_id": "A/B", "mean": math.nan, "extra": 1}
    with pytest.raises(LeaderboardError) as error:
        schema.check_record(record, "somewhere/btcv.json", BUILTIN)
    message = str(error.value)
    assert message.startswith("somewhere/btcv.json: invalid submission")
    assert "$.model_id" in message and "$.mean" in message and "'extra'" in message


def test_dump_and_parse_round_trip() -> None:
    text = schema.dump_record(_run_record())
    assert text.endswith(b"}\n")
    assert schema.parse_json(text, "x") == _run_record()
    assert json.loads(text) == _run_record()
    with pytest.raises(ValueError, match="Out of range float values"):
        schema.dump_record(_run_record() | {"mean": math.nan})
    with pytest.raises(LeaderboardError, match=r"x\.json: malformed JSON: NaN is not a valid JSON"):
        schema.parse_json('{"mean": NaN}', "x.json")


def test_schema_file_is_a_valid_schema_of_its_declared_draft() -> None:
    document = schema.load_schema()
    assert document["properties"]["schema_version"] == {
        "const": schema.SCHEMA_VERSION,
        "description": "Bumped on any incompatible change.",
    }
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)
    assert validator_for(document) is Draft202012Validator
    assert schema.validator().META_SCHEMA == Draft202012Validator.META_SCHEMA


def test_schema_errors_name_the_field_path() -> None:
    record = _run_record() | {"values": [0.8, "0.9"], "source": {"url": None}}
    del record["date"]
    problems = schema.schema_errors(record)
    assert any(p.startswith("$.values[1]: ") for p in problems)
    assert any(p.startswith("$: ") and "'date'" in p for p in problems)
    assert any(p.startswith("$.source: ") for p in problems)
    # JSON numbers: no NaN or infinity, no booleans; integers as json reads them.
    # The type of the field, and of a run's field (the schema's if/then), both fail.
    assert schema.schema_errors(_run_record() | {"stdev": math.nan}) == [
        "$.stdev: nan is not of type 'number', 'null'",
        "$.stdev: nan is not of type 'number'",
    ]
    assert schema.schema_errors(_run_record() | {"parameters": True})
    assert schema.schema_errors(_run_record() | {"parameters": 72e6}) == [
        "$.parameters: 72000000.0 is not of type 'integer', 'null'"
    ]
    assert schema.schema_errors(_run_record() | {"mean": math.inf})


def test_slug_pattern_of_schema_matches_ids_module() -> None:
    from eva_coralbay.leaderboard import ids

    assert schema.load_schema()["$defs"]["slug"]["pattern"] == ids.SLUG_PATTERN
    assert schema.load_schema()["$defs"]["slug"]["maxLength"] == ids.SLUG_MAX_LENGTH


def test_screen_survives_garbage() -> None:
    garbage = [None, [], "x", {"schema_version": 1}, _run_record() | {"mean": "abc"}]
    assert table_validation.screen(garbage, BUILTIN).tolist() == [True] * len(garbage)
