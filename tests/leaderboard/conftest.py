"""Fixtures for the leaderboard tests: eva output folders and leaderboard roots."""

from __future__ import annotations

import pathlib
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from eva_coralbay.leaderboard.aggregate import Board
from tests.conftest import missing_outside_ci
from tests.leaderboard import eva_output

DATA = pathlib.Path(__file__).parent / "data"
REAL_EVA_SESSION = DATA / "eva_fit" / "tiny" / "organmnist" / "20261127-214018009031_bbc47a2d"
"""A folder written by a real `eva fit` (see data/eva_fit/README.md)."""


def snapshot(root: pathlib.Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes, to show that nothing was written."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """An empty leaderboard folder."""
    return tmp_path / "leaderboard"


@pytest.fixture
def segmentation_session(tmp_path: pathlib.Path) -> pathlib.Path:
    """A five-run BTCV segmentation session of radiology/coralbay in eva's layout."""
    return eva_output.write_session(
        tmp_path / "logs" / "radiology" / "coralbay" / "btcv",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics(eva_output.dice_runs(0.8)),
    )


@pytest.fixture
def classification_session(tmp_path: pathlib.Path) -> pathlib.Path:
    """A five-run offline OrganMNIST3D probe of radiology/voco_b in eva's layout."""
    return eva_output.write_session(
        tmp_path / "logs" / "radiology" / "voco_b" / "organmnist",
        eva_output.CLASSIFICATION_TEMPLATE,
        eva_output.classification_metrics([0.91, 0.92, 0.9, 0.93, 0.92]),
        env={"MODEL_NAME": "radiology/voco_b"},
    )


@pytest.fixture(scope="session")
def site_board(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, Board]:
    """A built leaderboard of realistic submissions (`builders.realistic_board`) and its tables.

    Built once per session: the site tests only read it.
    """
    from eva_coralbay.leaderboard import build
    from tests.leaderboard.builders import realistic_board

    scratch = tmp_path_factory.mktemp("site_board")
    root = scratch / "leaderboard"
    realistic_board(root, scratch)
    build.build(root)
    _, board = build.render_outputs(root)
    return root, board


@pytest.fixture(scope="session")
def site_url(site_board: tuple[pathlib.Path, Board]) -> Iterator[str]:
    """The address of `site_board`'s site served by `leaderboard serve`'s server on a free port."""
    from eva_coralbay.leaderboard import serve

    server = serve.make_server(serve.site_folder(site_board[0]), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield serve.url(server).rsplit("/", 1)[0] + "/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium under selenium, through the system's chromium and chromedriver.

    The browser's console log (`goog:loggingPrefs`) is kept, so that tests can read what the
    pages logged. Skips where selenium, chromium or chromedriver is missing; fails under CI.
    """
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing_outside_ci("selenium is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        missing_outside_ci(
            "chromium or chromedriver is not on PATH (Debian: apt-get install chromium "
            "chromium-driver; .ci/run installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --no-sandbox: the tests may run as root (CI does), where Chromium's sandbox refuses to start.
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
