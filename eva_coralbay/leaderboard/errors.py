"""The one exception type of the leaderboard: a problem a user can act on."""

from __future__ import annotations


class LeaderboardError(Exception):
    """Bad input or an inconsistent leaderboard folder, with a message naming what is wrong.

    The command line prints the message and exits with a nonzero status; nothing is written.
    """
