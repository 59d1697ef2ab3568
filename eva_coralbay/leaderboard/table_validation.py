"""Vectorised screening of many submission records at once, for `build`.

Validating records one by one costs tens of microseconds each, too slow for a leaderboard of
tens of thousands of entries. This module evaluates the same JSON Schema (and the registry
checks of `schema.record_problems`) column by column with pandas, and flags every row that
might be invalid. It only screens: flagged rows are then checked by `schema.record_problems`,
whose verdict and messages are authoritative, so a false alarm costs time, never correctness.
The screen must never pass a record that `record_problems` rejects (tested).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard import metrics, schema, tasks

_MISSING = object()
"""Stands for an absent field, so that absence fails every type test."""

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _of_type(kinds: pd.Series, kind: type) -> np.ndarray:
    """Which elements have exactly this Python type (`kinds` holds `type(element)`)."""
    return kinds.eq(kind).to_numpy(dtype=bool)


def _object_series(values: Sequence[Any], index: pd.Index | None = None) -> pd.Series:
    return pd.Series(values, index=index, dtype=object)


class _Screen:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def _resolve(self, reference: str) -> Mapping[str, Any]:
        node: Any = self._root
        for part in reference[2:].split("/"):
            node = node[part]
        return node

    def valid(self, column: pd.Series, node: Mapping[str, Any]) -> np.ndarray:
        """Returns, per element of `column`, whether it may satisfy `node`."""
        kinds = column.map(type)
        ok = np.ones(len(column), dtype=bool)
        if "type" in node:
            names = node["type"] if isinstance(node["type"], list) else [node["type"]]
            allowed = {kind for name in names for kind in _PYTHON_TYPES[name]}
            ok &= kinds.isin(list(allowed)).to_numpy()
            floats = _of_type(kinds, float)
            if floats.any():
                ok[floats] &= np.isfinite(column.to_numpy()[floats].astype(float))
        if "$ref" in node:
            ok &= self.valid(column, self._resolve(node["$ref"]))
        if "const" in node:
            ok &= self._equal(column, kinds, node["const"])
        if "enum" in node:
            any_option = np.zeros(len(column), dtype=bool)
            for option in node["enum"]:
                any_option |= self._equal(column, kinds, option)
            ok &= any_option
        if {"properties", "required", "additionalProperties"} & set(node):
            ok &= self._valid_objects(column, kinds, node)
        if "items" in node or "minItems" in node:
            ok &= self._valid_arrays(column, kinds, node)
        strings = _of_type(kinds, str)
        if strings.any() and {"minLength", "maxLength", "pattern"} & set(node):
            text = column.to_numpy()[strings]
            lengths = np.fromiter((len(value) for value in text), int, len(text))
            fine = (lengths >= node.get("minLength", 0)) & (
                lengths <= node.get("maxLength", math.inf)
            )
            if "pattern" in node:
                pattern = re.compile(node["pattern"])
                fine &= np.fromiter(
                    (pattern.search(value) is not None for value in text), bool, len(text)
                )
            ok[strings] &= fine
        if "minimum" in node:
            numbers = kinds.isin([int, float]).to_numpy()
            if numbers.any():
                ok[numbers] &= column.to_numpy()[numbers].astype(float) >= node["minimum"]
        if "anyOf" in node:
            any_option = np.zeros(len(column), dtype=bool)
            for option in node["anyOf"]:
                any_option |= self.valid(column, option)
            ok &= any_option
        for part in node.get("allOf", ()):
            ok &= self.valid(column, part)
        if "if" in node:
            condition = self.valid(column, node["if"])
            then = self.valid(column, node["then"]) if "then" in node else True
            otherwise = self.valid(column, node["else"]) if "else" in node else True
            ok &= np.where(condition, then, otherwise)
        return ok

    @staticmethod
    def _equal(column: pd.Series, kinds: pd.Series, value: Any) -> np.ndarray:
        same_type = _of_type(kinds, type(value))
        if value is None:
            return same_type
        result = np.zeros(len(column), dtype=bool)
        result[same_type] = [item == value for item in column.to_numpy()[same_type]]
        return result

    def _valid_objects(
        self, column: pd.Series, kinds: pd.Series, node: Mapping[str, Any]
    ) -> np.ndarray:
        objects = _of_type(kinds, dict)
        ok = np.ones(len(column), dtype=bool)
        if not objects.any():
            return ok
        rows = column.loc[objects]
        properties = node.get("properties", {})
        fine = np.ones(len(rows), dtype=bool)
        required = frozenset(node.get("required", ()))
        keys = rows.map(frozenset)
        if required:
            fine &= keys.map(required.issubset).to_numpy(dtype=bool)
        if node.get("additionalProperties") is False:
            fine &= keys.map(frozenset(properties).issuperset).to_numpy(dtype=bool)
        for name, sub in properties.items():
            values = _object_series([row.get(name, _MISSING) for row in rows], rows.index)
            present = np.fromiter((value is not _MISSING for value in values), bool, len(values))
            fine &= ~present | self.valid(values, sub)
        ok[objects] = fine
        return ok

    def _valid_arrays(
        self, column: pd.Series, kinds: pd.Series, node: Mapping[str, Any]
    ) -> np.ndarray:
        arrays = _of_type(kinds, list)
        ok = np.ones(len(column), dtype=bool)
        if not arrays.any():
            return ok
        rows = column.loc[arrays]
        lengths = rows.map(len).to_numpy()
        fine = lengths >= node.get("minItems", 0)
        if "items" in node and lengths.sum():
            positions = np.repeat(np.arange(len(rows)), lengths)
            items = _object_series([item for row in rows for item in row])
            item_ok = self.valid(items, node["items"])
            fine &= np.bincount(positions[~item_ok], minlength=len(rows)) == 0
        ok[arrays] = fine
        return ok


def _registry_checks(records: Sequence[Mapping[str, Any]], ok: np.ndarray) -> np.ndarray:
    """The checks of `schema.record_problems` beyond the JSON Schema, on schema-valid rows."""
    rows = np.flatnonzero(ok)
    selected = [records[int(row)] for row in rows]
    frame = pd.DataFrame(
        {
            name: _object_series([record[name] for record in selected])
            for name in (
                "task_id",
                "metric",
                "mean",
                "stdev",
                "values",
                "per_case_file",
                "per_case_sha256",
                "eva_metric_key",
                "stage",
                "date",
            )
        }
    )
    task_metric = {task.id: task.metric for task in tasks.TASKS.values()}
    eva_metric = {task.id: task.eva_metric for task in tasks.TASKS.values()}
    fine = frame["metric"].eq(frame["task_id"].map(task_metric)).to_numpy(dtype=bool, copy=True)
    lower = frame["metric"].map({m.id: m.lower for m in metrics.METRICS.values()}).astype(float)
    upper = frame["metric"].map({m.id: m.upper for m in metrics.METRICS.values()}).astype(float)
    mean = frame["mean"].astype(float)
    fine &= ((mean >= lower) & (mean <= upper)).to_numpy()
    lengths = frame["values"].map(lambda values: 0 if values is None else len(values)).to_numpy()
    with_values = lengths > 0
    if with_values.any():
        positions = np.repeat(np.flatnonzero(with_values), lengths[with_values])
        values = np.fromiter(
            (value for row in frame["values"][with_values] for value in row), float, lengths.sum()
        )
        inside = (values >= lower.to_numpy()[positions]) & (values <= upper.to_numpy()[positions])
        fine &= np.bincount(positions[~inside], minlength=len(frame)) == 0
        counts = np.bincount(positions, minlength=len(frame))
        with np.errstate(invalid="ignore", divide="ignore"):
            expected_mean = np.bincount(positions, values, len(frame)) / counts
            squares = (values - expected_mean[positions]) ** 2
            expected_stdev = np.sqrt(np.bincount(positions, squares, len(frame)) / (counts - 1))
        expected_stdev[counts == 1] = 0.0
        stdev = np.array([np.nan if value is None else value for value in frame["stdev"]], float)
        tolerance = schema.CONSISTENCY_TOLERANCE / 2  # float error of unordered sums
        fine[with_values] &= (np.abs(mean.to_numpy() - expected_mean)[with_values] <= tolerance) & (
            np.abs(stdev - expected_stdev)[with_values] <= tolerance
        )
    per_case_file, per_case_sha = frame["per_case_file"], frame["per_case_sha256"]
    fine &= (per_case_file.isna() == per_case_sha.isna()).to_numpy()
    fine &= np.fromiter(
        (
            file is None or (sha is not None and sha in file)
            for file, sha in zip(per_case_file, per_case_sha, strict=True)
        ),
        bool,
        len(frame),
    )
    keyed = frame["eva_metric_key"].notna() & frame["stage"].notna()
    expected_key = frame["stage"].astype(str) + "/" + frame["task_id"].map(eva_metric).astype(str)
    fine &= (~keyed | frame["eva_metric_key"].eq(expected_key)).to_numpy(dtype=bool)
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    fine &= dates.notna().to_numpy()
    result = ok.copy()
    result[rows] = fine
    return result


def screen(records: Sequence[Any]) -> np.ndarray:
    """Returns, per record, whether it needs the authoritative `schema.record_problems` check.

    False means the record is certainly valid.
    """
    column = _object_series(list(records))
    document = schema.load_schema()
    supported = column.map(
        lambda record: (
            type(record) is dict and record.get("schema_version") == schema.SCHEMA_VERSION
        )
    ).to_numpy(dtype=bool)
    ok = supported & _Screen(document).valid(column, document)
    ok &= column.map(
        lambda record: type(record) is dict and record.get("task_id") in tasks.TASKS
    ).to_numpy(dtype=bool)
    if ok.any():
        ok = _registry_checks(records, ok)
    return ~ok
