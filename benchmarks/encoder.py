"""CoralBay encoder vs eva's SwinUNETREncoder: time and peak memory, same weights, interleaved.

Run with `python -m benchmarks encoder` (or `nox -s bench`). Settings through the environment:
`CORALBAY_BENCH_REPS` (timed repetitions, default 5), `CORALBAY_BENCH_SIZE` (cube edge, default
96), `CORALBAY_BENCH_FEATURES` (F, default 48), `CORALBAY_BENCH_THREADS` (torch intra-op threads,
default torch's choice), `CORALBAY_BENCH_SKIP_BACKWARD=1` to skip forward+backward. Each figure
is the median over the repetitions; within a repetition the two models run back to back,
alternating which goes first, so background load hits both alike.

Peak memory is measured in a fresh subprocess per (model, measurement): after building the model
and the input, the process resets its resident-set high-water mark (`5 > /proc/self/clear_refs`),
runs one pass and reports `VmHWM - VmRSS(before)` from `/proc/self/status`: the most memory the
pass itself held at once. This counts every allocation torch makes on CPU, unlike
`tracemalloc`, which sees only Python objects.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchmarks import machine
from eva_coralbay.models import cpu_caches, window_attention

FORWARD_GFLOP = {"transformer forward": 101.0, "encoder forward": 264.0}
"""Work of one pass at F=48 on a 96³ input (the brief's counts), for the fraction of the peak;
forward + backward is about three forwards, so it is given as an estimate."""

MODELS = ("eva", "coralbay")
MEASUREMENTS = ("transformer forward", "encoder forward", "encoder forward+backward")


def _settings() -> dict[str, Any]:
    return {
        "reps": int(os.environ.get("CORALBAY_BENCH_REPS", "5")),
        "size": int(os.environ.get("CORALBAY_BENCH_SIZE", "96")),
        "features": int(os.environ.get("CORALBAY_BENCH_FEATURES", "48")),
        "backward": os.environ.get("CORALBAY_BENCH_SKIP_BACKWARD", "") != "1",
        "threads": int(os.environ.get("CORALBAY_BENCH_THREADS", "0")),
    }


def _apply_threads(settings: dict[str, Any]) -> None:
    if settings["threads"] > 0:
        torch.set_num_threads(settings["threads"])


def _build(features: int) -> dict[str, nn.Module]:
    """Both encoders (v2) with identical random weights."""
    from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder

    from eva_coralbay.models.encoder import CoralBayEncoder

    torch.manual_seed(0)
    reference = SwinUNETREncoder(feature_size=features, use_v2=True)
    coralbay = CoralBayEncoder(feature_size=features, use_v2=True)
    coralbay.load_state_dict(reference.state_dict(), strict=True)
    return {"eva": reference, "coralbay": coralbay}


def _task(model: nn.Module, measurement: str, image: torch.Tensor) -> Callable[[], None]:
    """One pass of `measurement` on `model`."""
    encoder: Any = model

    def transformer_forward() -> None:
        model.eval()
        with torch.no_grad():
            encoder.swinViT(image)

    def encoder_forward() -> None:
        model.eval()
        with torch.no_grad():
            encoder.forward_features(image)

    def encoder_forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        features = encoder.forward_features(image)
        loss = sum(feature.float().mean() for feature in features)
        assert isinstance(loss, torch.Tensor)
        loss.backward()

    return {
        "transformer forward": transformer_forward,
        "encoder forward": encoder_forward,
        "encoder forward+backward": encoder_forward_backward,
    }[measurement]


def _time(task: Callable[[], None]) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def _timings(settings: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Median-ready wall times per (measurement, model), interleaved and alternating."""
    models = _build(settings["features"])
    image = torch.randn(1, 1, settings["size"], settings["size"], settings["size"])
    measurements = [m for m in MEASUREMENTS if settings["backward"] or "backward" not in m]
    times: dict[tuple[str, str], list[float]] = {}
    for measurement in measurements:
        for name in MODELS:  # warm-up: caches, allocator, oneDNN primitives
            _task(models[name], measurement, image)()
        for rep in range(settings["reps"]):
            order = MODELS if rep % 2 == 0 else tuple(reversed(MODELS))
            for name in order:
                elapsed = _time(_task(models[name], measurement, image))
                times.setdefault((measurement, name), []).append(elapsed)
            summary = ", ".join(f"{n} {times[(measurement, n)][-1]:.2f}s" for n in MODELS)
            print(f"  {measurement} rep {rep + 1}: {summary}", flush=True)
    return times


def _peak_memory_child(model_name: str, measurement: str, settings: dict[str, Any]) -> None:
    """Runs in a subprocess: prints the RSS high-water mark above the pre-pass RSS, in bytes."""
    _apply_threads(settings)
    model = _build(settings["features"])[model_name]
    image = torch.randn(1, 1, settings["size"], settings["size"], settings["size"])
    task = _task(model, measurement, image)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS
    before = machine.status_bytes("VmRSS")
    task()
    print(json.dumps({"peak_bytes": machine.status_bytes("VmHWM") - before}))


def _peak_memory(model_name: str, measurement: str, settings: dict[str, Any]) -> int:
    command = [
        sys.executable,
        "-c",
        "import json, sys; from benchmarks import encoder; "
        "encoder._peak_memory_child(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))",
        model_name,
        measurement,
        json.dumps(settings),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"])


def _machine() -> str:
    caches = cpu_caches.this_machine()
    step_mib = window_attention.backward_step_elements(caches) * 4 / 2**20
    return (
        f"{machine.describe()}; torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()}) with {torch.get_num_threads()} "
        f"threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; caches per core "
        f"as sysfs gives them: {caches}, attention backward steps of {step_mib:g} MiB"
    )


def main() -> None:
    """Prints the markdown table comparing CoralBay with eva's SwinUNETREncoder."""
    settings = _settings()
    _apply_threads(settings)
    size, features = settings["size"], settings["features"]
    print(f"machine: {_machine()}", flush=True)
    print(
        f"input 1x1x{size}x{size}x{size}, float32, F={features}, v2, "
        f"{settings['reps']} interleaved reps after one warm-up",
        flush=True,
    )
    times = _timings(settings)
    measurements = sorted({m for m, _ in times}, key=MEASUREMENTS.index)
    memory = {
        (measurement, name): _peak_memory(name, measurement, settings)
        for measurement in measurements
        for name in MODELS
    }
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print()
    print("| measurement | eva SwinUNETREncoder | CoralBay | speed-up / memory ratio |")
    print("|---|---|---|---|")
    for measurement in measurements:
        reference = statistics.median(times[(measurement, "eva")])
        ours = statistics.median(times[(measurement, "coralbay")])
        print(
            f"| {measurement}: median time | {reference:.2f} s | {ours:.2f} s | "
            f"{reference / ours:.2f}x faster |"
        )
    for measurement in measurements:
        reference = memory[(measurement, "eva")] / 2**20
        ours = memory[(measurement, "coralbay")] / 2**20
        print(
            f"| {measurement}: peak RSS increase | {reference:.0f} MiB | {ours:.0f} MiB | "
            f"{ours / reference:.2f} of eva's |"
        )
    print(
        "\n(the transformer row compares `swinViT` with MONAI's `SwinTransformer`, v2 blocks "
        "included)"
    )
    if (size, features) == (96, 48):
        peak = machine.fp32_gemm_peak_gflops()
        print(f"\nfloat32 GEMM peak here: {peak:.0f} GFLOP/s (2048², best of 10)")
        work = {**FORWARD_GFLOP, "encoder forward+backward": 3 * FORWARD_GFLOP["encoder forward"]}
        for measurement in measurements:
            for name in MODELS:
                seconds = statistics.median(times[(measurement, name)])
                rate = work[measurement] / seconds
                estimate = " (work estimated as 3 forwards)" if "backward" in measurement else ""
                print(
                    f"  {measurement}, {name}: {rate:.0f} GFLOP/s = {rate / peak:.0%} of the "
                    f"peak{estimate}"
                )


if __name__ == "__main__":
    main()
