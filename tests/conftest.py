"""Shared fixtures: paths to the real CT in ../shared/data and a quiet, single-threaded torch."""

import os
import pathlib
import random
import subprocess
import sys
from typing import NoReturn

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: more intra-op threads per worker would only oversubscribe.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_python(code: str) -> str:
    """Runs `code` in a fresh interpreter with this checkout importable; returns its stdout.

    For what one process cannot show about itself: what an import loads or changes.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
    )
    return result.stdout


def _shared_data_dir() -> pathlib.Path:
    configured = os.environ.get("CORALBAY_SHARED_DATA")
    return pathlib.Path(configured) if configured else REPOSITORY_ROOT.parent / "shared" / "data"


def missing_outside_ci(message: str) -> NoReturn:
    """Skips a test whose data or tool is missing, with the reason; fails it under CI.

    A developer without the data or the tool still runs the rest; CI always has them, so there
    a missing one is a failure.
    """
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The folder of small real CT scans with labels (read in place, never copied)."""
    path = _shared_data_dir()
    if not (path / "totalsegmentator").is_dir():
        message = (
            f"the real CT test data is missing at {path}: the tests expect ../shared/data beside "
            "the repository (or set CORALBAY_SHARED_DATA)"
        )
        missing_outside_ci(message)
    return path


@pytest.fixture(scope="session")
def totalsegmentator_dir(shared_data_dir: pathlib.Path) -> pathlib.Path:
    """TotalSegmentator's reference scans: scan A (RAS), B (DICOM, LAS labels), C (LPS)."""
    return shared_data_dir / "totalsegmentator"


def pytest_report_header() -> list[str]:
    """The machine, and how much the hang guards stretch their limits on it."""
    from benchmarks import machine
    from tests import hang_guard

    return [
        f"machine: {machine.describe()}",
        f"hang guards: slowness {hang_guard.slowness():.2f} against the reference machine",
    ]


def _schedule_key(item: pytest.Item) -> tuple[bool, float]:
    slow = item.get_closest_marker("slow")
    return slow is None, -float(slow.kwargs.get("expected_s", 0)) if slow else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schedules the end-to-end jobs first, the longest (by their `expected_s`) at the head.

    Under `pytest -n 2 --dist worksteal` one worker starts the longest job while the other takes
    the rest of the queue, stealing what the first has not started.
    """
    items.sort(key=_schedule_key)


def _torch_state() -> dict[str, object]:
    """torch's process-wide settings that change the numbers of any later test."""
    torch = sys.modules.get("torch")
    if torch is None:  # a torch-free test module: nothing to guard yet
        return {}
    return {
        "threads": torch.get_num_threads(),
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "cpu autocast": torch.is_autocast_enabled("cpu"),
        "cpu autocast dtype": torch.get_autocast_dtype("cpu"),
        "default dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "mkldnn": torch.backends.mkldnn.enabled,
        "mkldnn conv precision": torch.backends.mkldnn.conv.fp32_precision,
        "mkldnn matmul precision": torch.backends.mkldnn.matmul.fp32_precision,
        "anomaly": torch.is_anomaly_enabled(),
    }


@pytest.fixture(autouse=True)
def _random_state_is_fixed() -> None:
    """Seeds Python's, NumPy's and torch's global generators before every test.

    Without it a test that draws from them (a module's default initialisation) sees whatever
    earlier tests on its worker left behind, so its numbers depend on the run's test order.
    """
    random.seed(0)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _torch_state_is_left_as_found(request: pytest.FixtureRequest) -> object:
    """Fails a test that leaves torch's global settings changed, naming them.

    Tests share worker processes in an order that differs from run to run, so a leaked
    setting shows up as a numerical failure of some later, innocent test.
    """
    before = _torch_state()
    yield
    after = _torch_state()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    if changed:
        pytest.fail(f"{request.node.nodeid} changed torch's global state: {changed}")
