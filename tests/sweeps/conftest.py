"""Fixtures of the sweep tests: a real SLURM cluster and a tiny phantom benchmark."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from eva_coralbay import demo
from eva_coralbay.data.synthetic import layouts
from tests.conftest import missing_outside_ci
from tests.sweeps import slurm_cluster as cluster


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A running single-node SLURM cluster; the environment that points its clients at it."""
    missing = cluster.missing_daemons()
    if missing:
        missing_outside_ci(
            f"SLURM is not installed ({', '.join(missing)} missing): install Debian's slurm-wlm "
            "and munge (.ci/run does)"
        )
    with cluster.slurm_cluster() as environment:
        yield environment


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's environment points SLURM's clients (sbatch, squeue) at the test cluster."""
    for name, value in slurm_cluster.items():
        monkeypatch.setenv(name, value)
    return slurm_cluster


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Three labelled phantoms (2 train, 1 validation) in the Decathlon layout."""
    root = tmp_path_factory.mktemp("phantoms")
    return demo.write_phantom_benchmark(root, demo.SMOKE.phantoms).root


@pytest.fixture(scope="session")
def luna25(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A tiny LUNA25 release: MetaImage scans with bright nodules and the annotation table."""
    return layouts.write_luna25(tmp_path_factory.mktemp("luna25"))
