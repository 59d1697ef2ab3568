"""Where the leaderboard lives when no `--root` is given."""

from __future__ import annotations

import os
import pathlib

import eva_coralbay

ENVIRONMENT_VARIABLE = "CORALBAY_LEADERBOARD"
"""Names the leaderboard root when set."""

FOLDER = "leaderboard"


def default_root(cwd: pathlib.Path | None = None) -> pathlib.Path:
    """Returns the leaderboard root used when `--root` is not given.

    In order: `$CORALBAY_LEADERBOARD`; the `leaderboard/` folder (with a `submissions/`
    folder) of the current directory or its nearest parent, i.e. of the checkout you stand in;
    the `leaderboard/` of the source checkout this package runs from (an editable install);
    else `./leaderboard`, created by the first submit. A pip-installed package carries no
    leaderboard, so outside a checkout you get a leaderboard of your own runs in `./leaderboard`.
    """
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return pathlib.Path(configured)
    here = (cwd or pathlib.Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / FOLDER / "submissions").is_dir():
            return folder / FOLDER
    checkout = pathlib.Path(eva_coralbay.__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / FOLDER / "submissions").is_dir():
        return checkout / FOLDER
    return here / FOLDER
