"""A small, compiled JSON Schema (draft 2020-12) validator for the keywords our schemas use.

`jsonschema` is not a dependency of this project. This validator covers exactly the subset
that `submission.schema.json` uses and refuses any other validation keyword, so the schema
file stays the single definition of a submission's shape. The schema is compiled once into
closures, because `build` validates tens of thousands of records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any, str, list], None]
"""Appends `<path>: <problem>` strings for every violation of one schema node."""

_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
_SUPPORTED = frozenset(
    {
        "$ref",
        "type",
        "const",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "anyOf",
        "allOf",
        "if",
        "then",
        "else",
    }
)


def _is_number(value: Any) -> bool:
    # JSON has no NaN or infinity; Python's json module reads them anyway.
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _type_test(names: list[str]) -> Callable[[Any], bool]:
    """A test for `type: names`, exact on Python types as `json` returns them (bool is no int)."""
    allowed = frozenset(kind for name in names for kind in _PYTHON_TYPES[name])
    if float not in allowed:
        return lambda value: type(value) in allowed
    return lambda value: (
        type(value) in allowed and (type(value) is not float or math.isfinite(value))
    )


def _same(left: Any, right: Any) -> bool:
    """JSON equality: `True` is not `1`."""
    return type(left) is type(right) and left == right


class Validator:
    """Validates instances against one schema document."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        """Compiles the schema.

        Raises:
            ValueError: When the schema uses a keyword this validator does not implement.
        """
        self._root = schema
        self._check = self._compile(schema)

    def errors(self, instance: Any) -> list[str]:
        """Returns every violation as `<path>: <message>`; empty when the instance is valid."""
        problems: list[str] = []
        self._check(instance, "$", problems)
        return problems

    def _resolve(self, reference: str) -> Mapping[str, Any]:
        if not reference.startswith("#/"):
            raise ValueError(f"only local references are supported, got {reference!r}")
        node: Any = self._root
        for part in reference[2:].split("/"):
            node = node[part]
        return node

    def _matcher(self, schema: Mapping[str, Any]) -> Callable[[Any], bool]:
        check = self._compile(schema)

        def matches(value: Any) -> bool:
            problems: list[str] = []
            check(value, "$", problems)
            return not problems

        return matches

    def _compile(self, schema: Mapping[str, Any]) -> Check:
        unknown = set(schema) - _SUPPORTED - _ANNOTATIONS
        if unknown:
            raise ValueError(f"unsupported JSON Schema keywords {sorted(unknown)}")
        checks: list[Check] = []
        type_test: Callable[[Any], bool] | None = None
        type_names = ""
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            type_test = _type_test(names)
            type_names = " or ".join(names)
        if "$ref" in schema:
            checks.append(self._compile(self._resolve(schema["$ref"])))
        if "const" in schema:
            constant = schema["const"]

            def check_const(value: Any, path: str, problems: list) -> None:
                if not _same(value, constant):
                    problems.append(f"{path}: must be {constant!r}, got {value!r}")

            checks.append(check_const)
        if "enum" in schema:
            options = list(schema["enum"])

            def check_enum(value: Any, path: str, problems: list) -> None:
                if not any(_same(value, option) for option in options):
                    problems.append(f"{path}: must be one of {options!r}, got {value!r}")

            checks.append(check_enum)
        if {"properties", "required", "additionalProperties"} & set(schema):
            properties = {
                name: self._compile(sub) for name, sub in schema.get("properties", {}).items()
            }
            required = tuple(schema.get("required", ()))
            closed = schema.get("additionalProperties") is False

            def check_object(value: Any, path: str, problems: list) -> None:
                if type(value) is not dict:
                    return
                for name in required:
                    if name not in value:
                        problems.append(f"{path}: missing required field {name!r}")
                for name, check in properties.items():
                    if name in value:
                        check(value[name], f"{path}.{name}", problems)
                if closed:
                    problems.extend(
                        f"{path}: unexpected field {name!r}"
                        for name in value
                        if name not in properties
                    )

            checks.append(check_object)
        if "items" in schema or "minItems" in schema:
            item_check = self._compile(schema["items"]) if "items" in schema else None
            min_items = schema.get("minItems", 0)

            def check_array(value: Any, path: str, problems: list) -> None:
                if type(value) is not list:
                    return
                if len(value) < min_items:
                    problems.append(f"{path}: needs at least {min_items} item(s)")
                if item_check is not None:
                    for index, item in enumerate(value):
                        item_check(item, f"{path}[{index}]", problems)

            checks.append(check_array)
        if {"minLength", "maxLength", "pattern"} & set(schema):
            min_length = schema.get("minLength", 0)
            max_length = schema.get("maxLength", math.inf)
            pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

            def check_string(value: Any, path: str, problems: list) -> None:
                if type(value) is not str:
                    return
                if len(value) < min_length:
                    problems.append(f"{path}: shorter than {min_length} character(s)")
                if len(value) > max_length:
                    problems.append(f"{path}: longer than {max_length} characters")
                if pattern is not None and not pattern.search(value):
                    problems.append(f"{path}: {value!r} does not match {pattern.pattern}")

            checks.append(check_string)
        if "minimum" in schema:
            minimum = schema["minimum"]

            def check_minimum(value: Any, path: str, problems: list) -> None:
                if _is_number(value) and value < minimum:
                    problems.append(f"{path}: {value!r} is below the minimum {minimum}")

            checks.append(check_minimum)
        if "anyOf" in schema:
            options = [self._matcher(option) for option in schema["anyOf"]]

            def check_any_of(value: Any, path: str, problems: list) -> None:
                if not any(option(value) for option in options):
                    problems.append(f"{path}: {value!r} matches none of the allowed forms")

            checks.append(check_any_of)
        checks.extend(self._compile(part) for part in schema.get("allOf", ()))
        if "if" in schema:
            condition = self._matcher(schema["if"])
            then_check = self._compile(schema["then"]) if "then" in schema else None
            else_check = self._compile(schema["else"]) if "else" in schema else None

            def check_conditional(value: Any, path: str, problems: list) -> None:
                branch = then_check if condition(value) else else_check
                if branch is not None:
                    branch(value, path, problems)

            checks.append(check_conditional)

        if type_test is None and len(checks) == 1:
            return checks[0]

        def check(value: Any, path: str, problems: list) -> None:
            if type_test is not None and not type_test(value):
                problems.append(f"{path}: expected {type_names}, got {value!r}")
                return
            for part in checks:
                part(value, path, problems)

        return check
