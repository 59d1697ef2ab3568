"""The GPU check (`python -m benchmarks gpu`) runs, tiny, on CPU.

Its `eva fit` part is left out (CORALBAY_GPU_EVA_STEPS=""): it is the demo's segmentation run
with other step counts, which tests/test_demo.py runs, and it would double this test's time.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

import pytest

from tests import hang_guard

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]

TINY = {
    "CORALBAY_GPU_DEVICE": "cpu",
    "CORALBAY_GPU_SIZE": "64",  # the smallest cube whose deepest map trains (2x2x2)
    "CORALBAY_GPU_FEATURES": "12",
    "CORALBAY_GPU_BATCH": "1",
    "CORALBAY_GPU_REPS": "1",
    "CORALBAY_GPU_WARMUP": "0",  # the figures are not the point here
    "CORALBAY_GPU_EVA_STEPS": "",
    "CORALBAY_GPU_PRETRAIN_OVERRIDES": (
        "model.feature_size=12 head.hidden_dim=32 head.bottleneck_dim=16 head.out_dim=64 "
        "crops.global_size=[32,32,64] crops.local_size=[32,32,64] crops.num_local=1 "
        "loss.koleo_weight=0"  # KoLeo needs two crops per view, the batch here is one
    ),
}


@pytest.mark.slow(expected_s=35)
def test_gpu_check_prints_and_appends_its_table(tmp_path: pathlib.Path) -> None:
    record = tmp_path / "benchmarks.md"
    record.write_text("# Benchmarks\n\nearlier results\n")
    environment = {
        **os.environ,
        **TINY,
        "CORALBAY_GPU_RECORD": str(record),
        "PYTHONPATH": str(REPOSITORY),
        "OMP_NUM_THREADS": "1",
    }
    result = hang_guard.run_watched(
        [sys.executable, "-m", "benchmarks", "gpu"],
        env=environment,
        cwd=REPOSITORY,
        log=tmp_path / "gpu.log",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = record.read_text()
    assert text.startswith("# Benchmarks\n\nearlier results\n")  # appended, nothing lost
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    measurements = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert measurements[:4] == [
        "encoder forward, fp32",
        "encoder forward, bf16",
        "encoder forward+backward, fp32",
        "encoder forward+backward, bf16",
    ]
    assert measurements[4].startswith("pretraining step, bf16-mixed, F=12, batch 1")
    assert len(measurements) == 5
    for row in rows[1:5]:
        figures = dict(re.findall(r"(eva_s|coralbay_s|speed-up) ([0-9.e+-]+)", row))
        assert set(figures) == {"eva_s", "coralbay_s", "speed-up"}
        assert all(float(value) > 0 for value in figures.values())
    assert float(re.search(r"s/step \(after the first\) ([0-9.e+-]+)", rows[5])[1]) > 0  # type: ignore[index]
