"""Vectorised screening of many submission records at once, for `build`.

Validating records one by one with `jsonschema` costs about a third of a millisecond each: 10 s
of CPU for a leaderboard of 30,000 entries (docs/benchmarks.md). This module evaluates the same
JSON Schema (and the registry checks of `schema.record_problems`) column by column, and flags
every row that might be invalid. It only screens: flagged rows are then checked by
`schema.record_problems`, whose verdict and messages are authoritative, so a false alarm costs
time, never correctness. The screen must never pass a record that `record_problems` rejects
(tested).

Each column is pulled out of the records once (C-level `itemgetter`/`zip`), its element types
are coded as small integers, and every keyword becomes a numpy operation on those codes; string
patterns run in pyarrow's regex engine.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eva_coralbay.leaderboard import metrics, schema, tasks, variants


class _Absent:
    """Fills the column of an optional field a record does not have."""


_ABSENT = _Absent()

_NULL, _BOOL, _INT, _FLOAT, _STR, _LIST, _DICT, _OTHER, _MISSING = range(9)
_CODES: dict[type, int] = {
    type(None): _NULL,
    bool: _BOOL,
    int: _INT,
    float: _FLOAT,
    str: _STR,
    list: _LIST,
    dict: _DICT,
    _Absent: _MISSING,
}
_TYPE_CODES: dict[str, tuple[int, ...]] = {
    "null": (_NULL,),
    "boolean": (_BOOL,),
    "integer": (_INT,),
    "number": (_INT, _FLOAT),
    "string": (_STR,),
    "array": (_LIST,),
    "object": (_DICT,),
}


class _Column:
    """One field of many records: the values (object array) and their type codes."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        try:
            codes = map(_CODES.__getitem__, map(type, values))
            self.codes = np.fromiter(codes, np.int8, len(values))
        except KeyError:  # a type JSON cannot hold
            self.codes = np.fromiter(
                (_CODES.get(kind, _OTHER) for kind in map(type, values)), np.int8, len(values)
            )

    @classmethod
    def of(cls, items: Sequence[Any] | tuple[Any, ...]) -> _Column:
        return cls(np.fromiter(items, dtype=object, count=len(items)))

    def subset(self, mask: np.ndarray) -> _Column:
        column = _Column.__new__(_Column)
        column.values, column.codes = self.values[mask], self.codes[mask]
        return column

    def floats(self, mask: np.ndarray) -> np.ndarray:
        return self.values[mask].astype(float)


class _Keys:
    """The key sets of many records: most are one of a few `shapes`; the others are listed."""

    def __init__(
        self, shapes: tuple[frozenset[str], ...], shape: np.ndarray, others: list[frozenset]
    ) -> None:
        self.shapes, self.others = shapes, others
        self.shape = shape
        """Per record the index of its key set in `shapes`, -1 for one of `others`."""

    @classmethod
    def of(cls, records: Sequence[dict], shapes: tuple[frozenset[str], ...]) -> _Keys:
        """Sorts records by key set: compares key views (cheap), builds sets for the rest."""
        shape = np.full(len(records), -1, dtype=np.int8)
        pending = np.arange(len(records))
        for index, keys in enumerate(shapes):
            matches = np.fromiter(
                (records[position].keys() == keys for position in pending.tolist()),
                bool,
                len(pending),
            )
            shape[pending[matches]] = index
            pending = pending[~matches]
        return cls(shapes, shape, [frozenset(records[position]) for position in pending.tolist()])

    def holds(self, test: Callable[[frozenset[str]], bool]) -> np.ndarray:
        """Whether `test` holds for each record's key set."""
        # The placeholder at the end is what shape -1 indexes; those rows are set below.
        verdicts = np.array([*map(test, self.shapes), False])
        result = verdicts[self.shape]
        result[self.shape < 0] = [test(keys) for keys in self.others]
        return result

    def subset(self, mask: np.ndarray) -> _Keys:
        """The key sets of the records selected by `mask`."""
        other_mask = mask[self.shape < 0]
        others = [keys for keys, kept in zip(self.others, other_mask, strict=True) if kept]
        return _Keys(self.shapes, self.shape[mask], others)


class _Screen:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def _resolve(self, reference: str) -> Mapping[str, Any]:
        node: Any = self._root
        for part in reference[2:].split("/"):
            node = node[part]
        return node

    def valid(self, column: _Column, node: Mapping[str, Any]) -> np.ndarray:
        """Returns, per element of `column`, whether it may satisfy `node`."""
        codes = column.codes
        ok = np.ones(len(codes), dtype=bool)
        if "type" in node:
            names = node["type"] if isinstance(node["type"], list) else [node["type"]]
            ok &= np.isin(codes, [code for name in names for code in _TYPE_CODES[name]])
            floats = codes == _FLOAT
            if floats.any():
                ok[floats] &= np.isfinite(column.floats(floats))
        if "$ref" in node:
            ok &= self.valid(column, self._resolve(node["$ref"]))
        if "const" in node:
            ok &= self._equal(column, node["const"])
        if "enum" in node:
            any_option = np.zeros(len(codes), dtype=bool)
            for option in node["enum"]:
                any_option |= self._equal(column, option)
            ok &= any_option
        if {"properties", "required", "additionalProperties"} & set(node):
            objects = codes == _DICT
            if objects.any():
                ok[objects] &= self.valid_records(list(column.values[objects]), node)
        if "items" in node or "minItems" in node:
            ok &= self._valid_arrays(column, node)
        strings = codes == _STR
        if strings.any() and {"minLength", "maxLength", "pattern"} & set(node):
            text = pa.array(column.values[strings], type=pa.string())
            lengths = np.asarray(pc.utf8_length(text))  # pyright: ignore[reportAttributeAccessIssue]
            fine = (lengths >= node.get("minLength", 0)) & (
                lengths <= node.get("maxLength", math.inf)
            )
            if "pattern" in node:
                matched = pc.match_substring_regex(text, node["pattern"])  # pyright: ignore[reportAttributeAccessIssue]
                fine &= np.asarray(matched, dtype=bool)
            ok[strings] &= fine
        if "minimum" in node:
            numbers = (codes == _INT) | (codes == _FLOAT)
            if numbers.any():
                ok[numbers] &= column.floats(numbers) >= node["minimum"]
        if "anyOf" in node:
            any_option = np.zeros(len(codes), dtype=bool)
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
    def _equal(column: _Column, value: Any) -> np.ndarray:
        same_type = column.codes == _CODES.get(type(value), _OTHER)
        if value is None or not same_type.any():
            return same_type
        result = np.zeros(len(column.codes), dtype=bool)
        result[same_type] = column.values[same_type] == value
        return result

    def valid_records(self, records: list[dict], node: Mapping[str, Any]) -> np.ndarray:
        """Checks dicts against an object schema, its conditional parts included."""
        return self.checked_columns(records, node)[0]

    def checked_columns(
        self, records: list[dict], node: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, _Column], np.ndarray]:
        """Checks dicts against an object schema.

        Returns:
            Per record whether it may be valid; the columns of the records that have every
            required key (an optional key a record lacks is `_ABSENT` there); and which records
            those are.
        """
        names = _property_names(node)
        required = sorted(node.get("required", ()))
        optional = sorted(names - set(required))
        # Nearly every record has exactly the schema's keys, or only the required ones (written
        # before an optional field was added).
        keys = _Keys.of(records, (frozenset(names), frozenset(required)))
        complete = keys.holds(frozenset(required).issubset)
        # Rows missing a required key take the slow path (they are invalid anyway); the others
        # are checked column-wise.
        rows = [record for record, full in zip(records, complete, strict=True) if full]
        ok = complete.copy()
        columns: dict[str, _Column] = {}
        if rows:
            if required:
                getter = operator.itemgetter(*required)
                transposed = zip(*map(getter, rows), strict=True) if len(required) > 1 else None
                values = transposed or [tuple(map(getter, rows))]
                columns = {
                    name: _Column.of(items) for name, items in zip(required, values, strict=True)
                }
            # `properties` constrains only the keys a record has: every check accepts _ABSENT.
            absent = itertools.repeat(_ABSENT)
            for name in optional:
                found = tuple(map(dict.get, rows, itertools.repeat(name), absent))
                columns[name] = _Column.of(found)
            ok[complete] = self._valid_columns(columns, keys.subset(complete), len(rows), node)
        return ok, columns, complete

    def _valid_columns(
        self,
        columns: dict[str, _Column],
        keys: _Keys,
        n_rows: int,
        node: Mapping[str, Any],
    ) -> np.ndarray:
        properties = node.get("properties", {})
        ok = np.ones(n_rows, dtype=bool)
        if node.get("additionalProperties") is False:
            ok &= keys.holds(frozenset(properties).issuperset)
        for name, sub in properties.items():
            column = columns[name]
            missing = column.codes == _MISSING
            ok &= self.valid(column, sub) | missing if missing.any() else self.valid(column, sub)
        for part in node.get("allOf", ()):
            ok &= self._valid_columns(columns, keys, n_rows, part)
        if "if" in node:
            condition = self._valid_columns(columns, keys, n_rows, node["if"])
            then = (
                self._valid_columns(columns, keys, n_rows, node["then"]) if "then" in node else True
            )
            otherwise = (
                self._valid_columns(columns, keys, n_rows, node["else"]) if "else" in node else True
            )
            ok &= np.where(condition, then, otherwise)
        return ok

    def _valid_arrays(self, column: _Column, node: Mapping[str, Any]) -> np.ndarray:
        arrays = column.codes == _LIST
        ok = np.ones(len(column.codes), dtype=bool)
        if not arrays.any():
            return ok
        rows = column.values[arrays]
        lengths = np.fromiter(map(len, rows), int, len(rows))
        fine = lengths >= node.get("minItems", 0)
        if "items" in node and lengths.sum():
            positions = np.repeat(np.arange(len(rows)), lengths)
            items = _Column(np.fromiter(itertools.chain.from_iterable(rows), object, lengths.sum()))
            item_ok = self.valid(items, node["items"])
            fine &= np.bincount(positions[~item_ok], minlength=len(rows)) == 0
        ok[arrays] = fine
        return ok


def _property_names(node: Mapping[str, Any]) -> set[str]:
    """The keys an object schema names: its properties and required keys, conditionals too."""
    names = set(node.get("properties", {})) | set(node.get("required", ()))
    for part in [*node.get("allOf", ()), *(node[k] for k in ("if", "then", "else") if k in node)]:
        names |= _property_names(part)
    return names


def _registry_checks(columns: dict[str, _Column], known: tasks.Registry) -> np.ndarray:
    """The checks of `schema.record_problems` beyond the JSON Schema, on schema-valid rows."""
    column = {name: columns[name].values for name in columns}
    n_rows = len(column["task_id"])
    task_ids = column["task_id"]
    registry = list(known)
    position = {task.id: index for index, task in enumerate(registry)}
    # A label-efficiency variant (`btcv@5`) is checked against its task.
    base = variants.base_task
    index = np.fromiter((position.get(base(task), -1) for task in task_ids), int, n_rows)
    fine = index >= 0
    index = np.where(fine, index, 0)
    task_metric = np.array([task.metric for task in registry], dtype=object)[index]
    fine &= task_metric == column["metric"]
    bounds = {metric.id: (metric.lower, metric.upper) for metric in metrics.METRICS.values()}
    lower = np.array([bounds[task.metric][0] for task in registry])[index]
    upper = np.array([bounds[task.metric][1] for task in registry])[index]
    mean = column["mean"].astype(float)
    fine &= (mean >= lower) & (mean <= upper)
    has_values = columns["values"].codes == _LIST
    lengths = np.zeros(n_rows, dtype=int)
    lengths[has_values] = np.fromiter(map(len, column["values"][has_values]), int)
    with_values = lengths > 0
    if with_values.any():
        positions = np.repeat(np.arange(n_rows), lengths)
        values = np.fromiter(
            itertools.chain.from_iterable(column["values"][with_values]), float, lengths.sum()
        )
        inside = (values >= lower[positions]) & (values <= upper[positions])
        fine &= np.bincount(positions[~inside], minlength=n_rows) == 0
        counts = np.bincount(positions, minlength=n_rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected_mean = np.bincount(positions, values, n_rows) / counts
            squares = (values - expected_mean[positions]) ** 2
            expected_stdev = np.sqrt(np.bincount(positions, squares, n_rows) / (counts - 1))
        expected_stdev[counts == 1] = 0.0
        stdev = np.full(n_rows, np.nan)
        numbers = columns["stdev"].codes != _NULL
        stdev[numbers] = column["stdev"][numbers].astype(float)
        tolerance = schema.CONSISTENCY_TOLERANCE / 2  # float error of unordered sums
        fine[with_values] &= (np.abs(mean - expected_mean)[with_values] <= tolerance) & (
            np.abs(stdev - expected_stdev)[with_values] <= tolerance
        )
    # The schema fixes per_case_file to per_case/<64 hex>.parquet: compare the hex with the sha.
    file_null = columns["per_case_file"].codes == _NULL
    sha_null = columns["per_case_sha256"].codes == _NULL
    fine &= file_null == sha_null
    both = ~file_null & ~sha_null
    if both.any():
        names = pa.array(column["per_case_file"][both], pa.string())
        hex_part = pc.utf8_slice_codeunits(names, 9, 73)  # pyright: ignore[reportAttributeAccessIssue]
        same = pc.equal(hex_part, pa.array(column["per_case_sha256"][both], pa.string()))  # pyright: ignore[reportAttributeAccessIssue]
        fine[both] &= np.asarray(same, dtype=bool)
    keyed = (columns["eva_metric_key"].codes != _NULL) & (columns["stage"].codes != _NULL)
    if keyed.any():
        eva_metric = np.array([task.eva_metric for task in registry], dtype=object)[index]
        expected = column["stage"][keyed] + "/" + eva_metric[keyed]
        fine[keyed] &= column["eva_metric_key"][keyed] == expected
    dates = pc.strptime(  # pyright: ignore[reportAttributeAccessIssue]
        pa.array(column["date"], pa.string()), format="%Y-%m-%d", unit="s", error_is_null=True
    )
    fine &= ~np.asarray(dates.is_null(), dtype=bool)
    return fine


def screen(records: Sequence[Any], registry: tasks.Registry) -> np.ndarray:
    """Returns, per record, whether it needs the authoritative `schema.record_problems` check.

    False means the record is certainly valid for a leaderboard of `registry`'s tasks.
    """
    document = schema.load_schema()
    is_current = np.fromiter(
        (
            type(record) is dict and record.get("schema_version") == schema.SCHEMA_VERSION
            for record in records
        ),
        bool,
        len(records),
    )
    ok = np.zeros(len(records), dtype=bool)
    candidates = [record for record, current in zip(records, is_current, strict=True) if current]
    if candidates:
        valid, columns, complete = _Screen(document).checked_columns(candidates, document)
        passed = valid[complete]
        if passed.any():
            passed[passed] = _registry_checks(
                {name: column.subset(passed) for name, column in columns.items()}, registry
            )
            valid[complete] = passed
        ok[is_current] = valid
    return ~ok
