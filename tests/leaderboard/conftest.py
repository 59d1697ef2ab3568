"""Fixtures for the leaderboard tests: eva output folders and leaderboard roots."""

from __future__ import annotations

import pathlib

import pytest

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
