"""Argument types shared by the subcommands (not a subcommand: the leading underscore)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object, such as `--model-kwargs '{"feature_size": 12}'`.

    Raises:
        argparse.ArgumentTypeError: For text that is not JSON or not an object.
    """
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value
