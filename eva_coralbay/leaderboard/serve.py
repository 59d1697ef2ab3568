"""`serve`: the built website on localhost for a quick look, with the standard library's server."""

from __future__ import annotations

import functools
import http.server
import pathlib
from typing import Any

from eva_coralbay.leaderboard import render_site
from eva_coralbay.leaderboard.errors import LeaderboardError

DEFAULT_PORT = 8000
HOST = "127.0.0.1"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request (the command prints its URL once)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drops the per-request log line."""


def site_folder(root: pathlib.Path) -> pathlib.Path:
    """The site folder of a leaderboard root.

    Raises:
        LeaderboardError: When the root has no built site.
    """
    folder = root / render_site.FOLDER
    if not (folder / render_site.INDEX).is_file():
        raise LeaderboardError(
            f"{folder}: no built site; run `coralbay leaderboard build --root {root}` first"
        )
    return folder


def make_server(
    folder: pathlib.Path, port: int = DEFAULT_PORT, host: str = HOST
) -> http.server.ThreadingHTTPServer:
    """A server of `folder` on `host:port`; port 0 takes a free port.

    Call `serve_forever()` on it (in a thread, for tests) and `shutdown()` to stop it.

    Raises:
        LeaderboardError: When the port cannot be bound (in use, or not allowed).
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise LeaderboardError(
            f"cannot serve on {host}:{port} ({error.strerror}); pass --port 0 for a free port"
        ) from None


def url(server: http.server.ThreadingHTTPServer) -> str:
    """The address of the site's index page."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/{render_site.INDEX}"
