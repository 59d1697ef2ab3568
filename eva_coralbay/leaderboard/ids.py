"""The one rule for ids that become folder and file names: lowercase safe slugs."""

from __future__ import annotations

import re

from eva_coralbay.leaderboard.errors import LeaderboardError

SLUG_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
"""Lowercase letters and digits, single `.`, `_` or `-` between them; no `/`, no `..`."""

SLUG_MAX_LENGTH = 64
"""The longest id; ids are folder names and must stay short on every filesystem."""

_SLUG = re.compile(SLUG_PATTERN)


def is_slug(value: object) -> bool:
    """Whether `value` is a string that is a safe slug."""
    return isinstance(value, str) and len(value) <= SLUG_MAX_LENGTH and bool(_SLUG.match(value))


def check_slug(value: object, what: str) -> str:
    """Returns `value` when it is a safe slug.

    Lowercase only, so that two ids never name the same folder on a case-insensitive
    filesystem (macOS, Windows).

    Args:
        value: The candidate id.
        what: What the id names, for the error message (for example "model id").

    Raises:
        LeaderboardError: When `value` is not a safe slug.
    """
    if not is_slug(value):
        raise LeaderboardError(
            f"invalid {what} {value!r}: use 1-{SLUG_MAX_LENGTH} lowercase letters and digits, "
            "with single '.', '_' or '-' between them (no '/', no '..', no uppercase)"
        )
    assert isinstance(value, str)
    return value
