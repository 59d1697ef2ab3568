"""The GPU check: encoder speed in fp32 and bf16, one f48 pretraining step, `eva fit` steps/s.

Run `python -m benchmarks gpu` on the first GPU machine (about 5 minutes on one GPU). It prints
one table and, on a GPU, appends it to docs/benchmarks.md with the machine's description:

- eva's SwinUNETREncoder vs the CoralBay encoder (same weights), forward and forward+backward,
  at batch 2, 96³, F=48, in float32 and under bf16 autocast (median of the repetitions);
- one CoralBay pretraining step (configs/pretrain/coralbay_f48.yaml, its crops) in bf16-mixed,
  with its peak GPU memory;
- `eva fit` optimiser steps per second for the Decathlon-layout segmentation config on
  synthetic phantoms (difference of a short and a longer run, so start-up cancels out).

Settings through the environment, so that the suite can run it tiny on CPU:
`CORALBAY_GPU_DEVICE` (default cuda when available, else cpu), `CORALBAY_GPU_SIZE` (96),
`CORALBAY_GPU_FEATURES` (48), `CORALBAY_GPU_BATCH` (2), `CORALBAY_GPU_REPS` (5),
`CORALBAY_GPU_WARMUP` (1: one untimed pass per model first; 0 skips it),
`CORALBAY_GPU_PRETRAIN_OVERRIDES` (extra `key=value` overrides of the pretraining config,
space-separated), `CORALBAY_GPU_EVA_STEPS` ("10,60": the two runs' max steps; "" skips eva),
`CORALBAY_GPU_RECORD` (file to append the table to; default docs/benchmarks.md on a GPU,
nothing on CPU; "" never).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import machine

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[1]

ENCODER_FORWARD_GFLOP = 264.0
"""The F=48 encoder's forward pass on one 96³ input (the transformer alone: 101)."""

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def _settings() -> dict[str, Any]:
    device = os.environ.get("CORALBAY_GPU_DEVICE") or (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    default_record = str(REPOSITORY_ROOT / "docs" / "benchmarks.md") if device == "cuda" else ""
    eva_steps = os.environ.get("CORALBAY_GPU_EVA_STEPS", "10,60")
    return {
        "device": torch.device(device),
        "size": int(os.environ.get("CORALBAY_GPU_SIZE", "96")),
        "features": int(os.environ.get("CORALBAY_GPU_FEATURES", "48")),
        "batch": int(os.environ.get("CORALBAY_GPU_BATCH", "2")),
        "reps": int(os.environ.get("CORALBAY_GPU_REPS", "5")),
        "warmup": os.environ.get("CORALBAY_GPU_WARMUP", "1") != "0",
        "pretrain_overrides": os.environ.get("CORALBAY_GPU_PRETRAIN_OVERRIDES", "").split(),
        "eva_steps": [int(step) for step in eva_steps.split(",")] if eva_steps else [],
        "record": os.environ.get("CORALBAY_GPU_RECORD", default_record),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(task: Callable[[], None], device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    task()
    _synchronize(device)
    return time.perf_counter() - start


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def encoder_rows(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """eva vs CoralBay, forward and forward+backward, in float32 and bf16."""
    from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder

    from eva_coralbay.models.encoder import CoralBayEncoder

    device = settings["device"]
    torch.manual_seed(0)
    reference = SwinUNETREncoder(feature_size=settings["features"], use_v2=True)
    coralbay = CoralBayEncoder(feature_size=settings["features"], use_v2=True)
    coralbay.load_state_dict(reference.state_dict(), strict=True)
    models: dict[str, Any] = {"eva": reference.to(device), "coralbay": coralbay.to(device)}
    size, batch = settings["size"], settings["batch"]
    image = torch.rand(batch, 1, size, size, size, device=device)
    at_reference_scale = size == 96 and settings["features"] == 48

    def forward(model: Any, dtype: torch.dtype | None) -> Callable[[], None]:
        def run() -> None:
            model.eval()
            with torch.no_grad(), _autocast(device, dtype):
                model.forward_features(image)

        return run

    def forward_backward(model: Any, dtype: torch.dtype | None) -> Callable[[], None]:
        def run() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            with _autocast(device, dtype):
                features = model.forward_features(image)
            sum(feature.float().mean() for feature in features).backward()  # type: ignore[union-attr]

        return run

    rows = []
    for pass_name, make, flop_factor in (
        ("forward", forward, 1.0),
        ("forward+backward", forward_backward, 3.0),
    ):
        for precision, dtype in PRECISIONS.items():
            times: dict[str, list[float]] = {name: [] for name in models}
            for model in models.values() if settings["warmup"] else ():
                make(model, dtype)()  # warm-up: kernels, allocator, cuDNN autotuning
            for rep in range(settings["reps"]):
                order = list(models) if rep % 2 == 0 else list(reversed(models))
                for name in order:
                    times[name].append(_timed(make(models[name], dtype), device))
            medians = {name: statistics.median(values) for name, values in times.items()}
            row = {
                "measurement": f"encoder {pass_name}, {precision}",
                "eva_s": medians["eva"],
                "coralbay_s": medians["coralbay"],
                "speed-up": medians["eva"] / medians["coralbay"],
            }
            if at_reference_scale:
                flop = ENCODER_FORWARD_GFLOP * flop_factor * batch * 1e9
                row["coralbay_TFLOP/s"] = flop / medians["coralbay"] / 1e12
            rows.append(row)
            print(f"  {row}", flush=True)
    return rows


def pretraining_row(settings: dict[str, Any]) -> dict[str, Any]:
    """Seconds per bf16-mixed pretraining step of the f48 config, and its peak GPU memory."""
    import lightning as L
    from lightning.pytorch import callbacks as pl_callbacks

    from eva_coralbay.pretraining.config import load_config
    from eva_coralbay.pretraining.module import DINOPretraining

    config = load_config(
        REPOSITORY_ROOT / "configs" / "pretrain" / "coralbay_f48.yaml",
        [
            f"data.batch_size={settings['batch']}",
            # The schedules must fit in the three steps timed here.
            "optim.warmup_steps=0",
            "optim.freeze_last_layer_steps=0",
            "loss.warmup_teacher_temp_steps=0",
            *settings["pretrain_overrides"],
        ],
    )
    crops = config.crops
    batch = settings["batch"]
    generator = torch.Generator().manual_seed(0)
    global_size, local_size = crops.global_size, crops.local_size
    sample = {
        "global_crops": torch.rand(batch, 2, 1, *global_size, generator=generator),
        "local_crops": torch.rand(batch, crops.num_local, 1, *local_size, generator=generator),
    }
    if crops.num_local == 0:
        del sample["local_crops"]
    steps = 3
    step_times: list[float] = []

    class StepTimer(pl_callbacks.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            _synchronize(settings["device"])
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args: Any) -> None:
            _synchronize(settings["device"])
            step_times.append(time.perf_counter() - self.start)

    device = settings["device"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    module = DINOPretraining(config.to_dict())
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=config.optim.clip_grad,
        callbacks=[StepTimer()],
    )
    loader = torch.utils.data.DataLoader([sample] * steps, batch_size=None)  # type: ignore[arg-type]
    trainer.fit(module, loader)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "measurement": (
            f"pretraining step, bf16-mixed, F={config.model.feature_size}, batch {batch}, "
            f"2 x {global_size} + {crops.num_local} x {local_size}"
        ),
        "s/step (after the first)": statistics.median(step_times[1:]),
        "peak GiB": peak,
    }


def eva_fit_row(settings: dict[str, Any]) -> dict[str, Any] | None:
    """`eva fit` optimiser steps per second on the segmentation config, start-up excluded."""
    if not settings["eva_steps"]:
        return None
    with tempfile.TemporaryDirectory(prefix="coralbay-gpu-bench-") as folder:
        return _eva_fit_row(settings, pathlib.Path(folder))


def _eva_fit_row(settings: dict[str, Any], workdir: pathlib.Path) -> dict[str, Any]:
    from eva_coralbay import demo

    short, long = settings["eva_steps"]
    dataset = demo.write_phantom_benchmark(workdir / "data")
    steps = demo.plan(workdir / "out", dataset, demo.TINY, pretrain_steps=None)
    (fit,) = [s for s in steps if s.title.startswith("eva fit") and "coralbay-random" in s.title]
    features = settings["features"]
    env = {
        **fit.env,
        "MODEL_EXTRA_KWARGS": json.dumps({"feature_size": features}),
        "IN_FEATURES": str(features),
        # No validation while training; the one after it (same cases) cancels out.
        "VAL_CHECK_INTERVAL": str(10 * long),
        "CHECKPOINT_TYPE": "last",
        "SAVE_LAST": "true",
    }
    if settings["device"].type == "cuda":  # the loader must keep up with the GPU
        env.update(
            {"N_DATA_WORKERS": str(min(8, os.cpu_count() or 1)), "PERSISTENT_WORKERS": "true"}
        )
    seconds = {}
    for max_steps in (short, long):
        run_env = {**os.environ, **env, "MAX_STEPS": str(max_steps)}
        run_env["OUTPUT_ROOT"] = str(workdir / f"runs-{max_steps}")
        start = time.perf_counter()
        done = subprocess.run(fit.command, env=run_env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"eva fit failed:\n{(done.stdout + done.stderr)[-4000:]}")
        seconds[max_steps] = time.perf_counter() - start
    return {
        "measurement": (
            f"eva fit, decathlon_format segmentation, F={features}, ROI {env['ROI_SIZE']}, "
            f"batch {env['BATCH_SIZE']}"
        ),
        "steps/s": (long - short) / (seconds[long] - seconds[short]),
        "run seconds": {str(k): round(v, 1) for k, v in seconds.items()},
    }


def _device_description(device: torch.device) -> str:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return (
            f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, torch "
            f"{torch.__version__}, CUDA {torch.version.cuda}"
        )
    return f"CPU: {machine.describe()}, torch {torch.__version__}"


def _markdown(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "—"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = [
        f"### GPU check, {datetime.date.today().isoformat()}",
        "",
        f"{_device_description(settings['device'])}; `python -m benchmarks gpu`, batch "
        f"{settings['batch']}, {settings['size']}³, F={settings['features']}.",
        "",
        "| measurement | figures |",
        "|---|---|",
    ]
    for row in rows:
        figures = ", ".join(f"{k} {cell(v)}" for k, v in row.items() if k != "measurement")
        lines.append(f"| {row['measurement']} | {figures} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Runs the three parts, prints the table and appends it where asked."""
    if not torch.cuda.is_available() and not os.environ.get("CORALBAY_GPU_DEVICE"):
        # `python -m benchmarks` runs every benchmark: at full size this one takes hours on CPU.
        print("no GPU: skipped (CORALBAY_GPU_DEVICE=cpu runs it on the CPU)", flush=True)
        return
    settings = _settings()
    print(f"device: {_device_description(settings['device'])}", flush=True)
    rows = encoder_rows(settings)
    rows.append(pretraining_row(settings))
    try:
        eva_row = eva_fit_row(settings)
    except RuntimeError as error:  # the first two parts' figures are kept either way
        print(error, file=sys.stderr)
        eva_row = {"measurement": "eva fit", "failed": str(error).splitlines()[-1]}
    if eva_row is not None:
        rows.append(eva_row)
    table = _markdown(rows, settings)
    print(table, flush=True)
    if settings["record"]:
        with open(settings["record"], "a", encoding="utf-8") as record:
            record.write("\n" + table)
        print(f"appended to {settings['record']}", file=sys.stderr)
