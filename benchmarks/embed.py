"""Whole-scan embedding: streaming pooling against stitching full-resolution maps, one run.

Run with `python -m benchmarks embed`. The scan is a phantom torso (`data.synthetic.phantoms`)
standardised with CoralBay's profile, thorax-sized by default (333 x 333 x 188 voxels at
1.5 mm); a second, smaller size shows how memory grows with the scan. The two paths:

- **stitched**: what `coralbay embed` did before, MONAI's `SlidingWindowInferer` stitching all six
  feature maps at full resolution on the CPU, then the encoder's `forward_multiscale` pooling
  them (the code as it was, kept here as the baseline);
- **streaming**: `data.embed.embed_volume`, each batch of windows reduced to weighted sums.

Settings through the environment: `CORALBAY_BENCH_SHAPE` (default 333x333x188),
`CORALBAY_BENCH_SMALL_SHAPE` (default 166x166x94), `CORALBAY_BENCH_FEATURES` (F, default 48),
`CORALBAY_BENCH_ROI` (window edge, default 96; overlap 0.5, 2 windows per call),
`CORALBAY_BENCH_REPS` (timed repetitions, default 1), `CORALBAY_BENCH_THREADS`, and
`CORALBAY_BENCH_ENCODER`: `real` (default: CoralBay's encoder, random weights) or `stand-in`, a
module that returns maps of the real encoder's shapes with next to no compute (average-pooled
input repeated over the channels). Both paths run the same encoder on the same windows, so the
stand-in isolates what differs between them (stitching or pooling, memory) on machines where
a real thorax pass takes many CPU-minutes; the script also times one real encoder call, to
put the difference next to the encoder's own cost.

Timings are interleaved in this process (the paths alternate which goes first per
repetition); peak memory is measured per (path, size) in a fresh subprocess as the rise of the
resident-set high-water mark over one pass (`benchmarks/encoder.py` explains the method).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from benchmarks import machine

PATHS = ("stitched", "streaming")
OVERLAP = 0.5
SW_BATCH_SIZE = 2


def _shape(text: str) -> tuple[int, int, int]:
    x, y, z = (int(size) for size in text.lower().split("x"))
    return x, y, z


def _settings() -> dict[str, Any]:
    return {
        "shape": _shape(os.environ.get("CORALBAY_BENCH_SHAPE", "333x333x188")),
        "small_shape": _shape(os.environ.get("CORALBAY_BENCH_SMALL_SHAPE", "166x166x94")),
        "features": int(os.environ.get("CORALBAY_BENCH_FEATURES", "48")),
        "roi": int(os.environ.get("CORALBAY_BENCH_ROI", "96")),
        "reps": int(os.environ.get("CORALBAY_BENCH_REPS", "1")),
        "threads": int(os.environ.get("CORALBAY_BENCH_THREADS", "0")),
        "encoder": os.environ.get("CORALBAY_BENCH_ENCODER", "real"),
    }


def _encoder(settings: dict[str, Any]) -> Any:
    from eva_coralbay.models.encoder import CoralBayEncoder

    torch.manual_seed(0)
    if settings["encoder"] == "real":
        return CoralBayEncoder(feature_size=settings["features"]).eval()
    if settings["encoder"] != "stand-in":
        raise SystemExit(f"CORALBAY_BENCH_ENCODER must be real or stand-in, not {settings!r}")
    return _StandIn(settings["features"]).eval()


class _StandIn(torch.nn.Module):
    """The encoder's six maps (channels F..16F at strides 1..32) at almost no compute."""

    CHANNELS = (1, 1, 2, 4, 8, 16)
    STRIDES = (1, 2, 4, 8, 16, 32)

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward_features(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for channels, stride in zip(self.CHANNELS, self.STRIDES, strict=True):
            pooled = torch.nn.functional.avg_pool3d(tensor, stride) if stride > 1 else tensor
            maps.append(pooled.repeat(1, channels * self.features, 1, 1, 1))
        return maps

    def forward_multiscale(self, features: list[torch.Tensor]) -> torch.Tensor:
        from eva_coralbay.models.encoder import CoralBayEncoder

        return CoralBayEncoder.forward_multiscale(self, features)  # type: ignore[arg-type]

    @property
    def _pool_op(self) -> torch.nn.Module:
        return torch.nn.AdaptiveAvgPool3d(1)


def _volume(shape: tuple[int, int, int]) -> torch.Tensor:
    """A phantom torso of `shape` voxels at 1.5 mm, standardised by CoralBay's profile."""
    from monai.data.meta_tensor import MetaTensor

    from eva_coralbay.data.profile import CORALBAY_PROFILE
    from eva_coralbay.data.synthetic.phantoms import make_phantom

    phantom = make_phantom(0, shape=shape, spacing=1.5)
    image = MetaTensor(
        torch.from_numpy(phantom.image[None].astype("float32")),
        affine=torch.as_tensor(phantom.affine, dtype=torch.float64),
    )
    standardised, _ = CORALBAY_PROFILE.apply(image)
    if tuple(standardised.shape[1:]) != shape:
        raise RuntimeError(f"the profile changed the phantom's shape to {standardised.shape}")
    return standardised.as_tensor().contiguous()


def _stitched(encoder: Any, volume: torch.Tensor, roi: int) -> torch.Tensor:
    """The embedding as `coralbay embed` computed it before streaming: stitch, then pool."""
    from monai.inferers.inferer import SlidingWindowInferer

    inferer = SlidingWindowInferer(
        roi_size=[roi] * 3,
        sw_batch_size=SW_BATCH_SIZE,
        overlap=OVERLAP,
        mode="constant",
        padding_mode="constant",
        cval=0.0,
        sw_device="cpu",
        device="cpu",
    )

    def window_maps(window: torch.Tensor) -> list[torch.Tensor]:
        return [feature_map.float() for feature_map in encoder.forward_features(window)]

    with torch.inference_mode():
        maps = inferer(inputs=volume[None], network=window_maps)
        return encoder.forward_multiscale(list(maps))[0]


def _streaming(encoder: Any, volume: torch.Tensor, roi: int) -> torch.Tensor:
    from eva_coralbay.data.embed import embed_volume

    return embed_volume(encoder, volume, roi_size=roi, overlap=OVERLAP, sw_batch_size=SW_BATCH_SIZE)


def _run(path: str, encoder: Any, volume: torch.Tensor, roi: int) -> torch.Tensor:
    return (_stitched if path == "stitched" else _streaming)(encoder, volume, roi)


def _peak_memory_child(path: str, shape: list[int], settings: dict[str, Any]) -> None:
    """Runs in a subprocess: prints the RSS high-water mark above the pre-pass RSS, in bytes."""
    if settings["threads"] > 0:
        torch.set_num_threads(settings["threads"])
    encoder = _encoder(settings)
    volume = _volume((shape[0], shape[1], shape[2]))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS
    before = machine.status_bytes("VmRSS")
    _run(path, encoder, volume, settings["roi"])
    print(json.dumps({"peak_bytes": machine.status_bytes("VmHWM") - before}))


def _peak_memory(path: str, shape: tuple[int, int, int], settings: dict[str, Any]) -> int:
    command = [
        sys.executable,
        "-c",
        "import json, sys; from benchmarks import embed; "
        "embed._peak_memory_child(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]))",
        path,
        json.dumps(list(shape)),
        json.dumps({**settings, "shape": None, "small_shape": None}),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"])


def _encoder_call_seconds(settings: dict[str, Any]) -> float:
    """One call of the real encoder on a batch of windows (median of 3 after a warm-up)."""
    from eva_coralbay.models.encoder import CoralBayEncoder

    torch.manual_seed(0)
    encoder = CoralBayEncoder(feature_size=settings["features"]).eval()
    windows = torch.rand(SW_BATCH_SIZE, 1, *[settings["roi"]] * 3)
    times = []
    with torch.inference_mode():
        for _ in range(4):
            start = time.perf_counter()
            encoder.forward_features(windows)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    """Prints the markdown table comparing streaming with stitched whole-scan embedding."""
    from eva_coralbay.data.embed import window_grid

    settings = _settings()
    if settings["threads"] > 0:
        torch.set_num_threads(settings["threads"])
    roi, shape, small = settings["roi"], settings["shape"], settings["small_shape"]
    calls = -(-len(window_grid(shape, roi, OVERLAP).windows()) // SW_BATCH_SIZE)
    print(
        f"machine: {machine.describe()}; torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    print(
        f"scan {'x'.join(map(str, shape))} (and {'x'.join(map(str, small))} for memory), "
        f"F={settings['features']}, {settings['encoder']} encoder, {roi}^3 windows, overlap "
        f"{OVERLAP}, {SW_BATCH_SIZE} windows per call ({calls} calls on the large scan), "
        f"{settings['reps']} interleaved reps",
        flush=True,
    )
    encoder = _encoder(settings)
    volume = _volume(shape)
    embeddings = {}
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for rep in range(settings["reps"]):
        order = PATHS if rep % 2 == 0 else tuple(reversed(PATHS))
        for path in order:
            gc.collect()
            start = time.perf_counter()
            embeddings[path] = _run(path, encoder, volume, roi)
            times[path].append(time.perf_counter() - start)
        print(
            f"  rep {rep + 1}: " + ", ".join(f"{p} {times[p][-1]:.1f}s" for p in PATHS),
            flush=True,
        )
    reference = embeddings["stitched"]
    gap = ((embeddings["streaming"] - reference).abs().max() / reference.abs().max()).item()
    del volume, embeddings
    gc.collect()
    memory = {
        (path, size): _peak_memory(path, size, settings)
        for size in (shape, small)
        for path in PATHS
    }
    encoder_call = _encoder_call_seconds(settings)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"streaming vs stitched embedding: max abs difference / max abs value = {gap:.1e}")
    print(
        f"one real encoder call (F={settings['features']}, {SW_BATCH_SIZE} x {roi}^3): "
        f"{encoder_call:.2f} s, so about {calls * encoder_call:.0f} s of encoder per large scan"
    )
    print()
    stitched, streaming = (statistics.median(times[path]) for path in PATHS)
    mib = {key: value / 2**20 for key, value in memory.items()}
    large, little = ("x".join(map(str, size)) for size in (shape, small))
    print("| measurement | stitched (before) | streaming | ratio |")
    print("|---|---|---|---|")
    print(
        f"| time, {large} | {stitched:.1f} s | {streaming:.1f} s | "
        f"{stitched / streaming:.1f}x faster |"
    )
    for size, name in ((shape, large), (small, little)):
        before, after = mib[("stitched", size)], mib[("streaming", size)]
        print(
            f"| peak RSS increase, {name} | {before:.0f} MiB | {after:.0f} MiB | "
            f"{after / before:.3f} of stitched |"
        )


if __name__ == "__main__":
    main()
