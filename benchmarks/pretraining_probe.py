"""Evidence that DINO pretraining learns: an organ-patch probe, pretrained versus random CoralBay.

1. Pretrains a small CoralBay (configs/pretrain/cpu_f12.yaml, F=12) on the three real CT scans
   in ../shared/data (no labels) for at most `--cpu-minutes` of CPU time (all threads, reading
   the scans included).
2. Cuts patches (the pretraining crop shape) centred on random voxels of organs that both
   labelled scans show (TotalSegmentator model outputs), from scan A (abdomen/pelvis, NIfTI) and
   scan B (upper abdomen, JPEG-2000 DICOM), standardised with CoralBay's profile.
3. Embeds every patch with the frozen multi-scale embedding (24·F) of the pretrained teacher and
   of the same architecture at random initialisation (several seeds).
4. Probes by scan, so no patch of the test scan is ever seen in training: logistic regression
   and 10-NN (on standardised features) fit on scan A's patches are scored on scan B's and vice
   versa (balanced accuracy over the 10 organs, averaged over both directions), for several
   patch-sampling seeds.

Run: `python -m benchmarks pretraining_probe` or, with options,
`python -m benchmarks.pretraining_probe --cpu-minutes 10 --workdir /tmp/probe`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIG = REPOSITORY / "configs" / "pretrain" / "cpu_f12.yaml"
FIGURE = REPOSITORY / "docs" / "figures" / "pretraining_probe.png"

# Organs with >= 2000 voxels at 1.5 mm in both labelled scans; left and right back muscles are
# one class because pretraining flips make the features left/right symmetric.
CLASSES = {
    "spleen": ["spleen"],
    "liver": ["liver"],
    "stomach": ["stomach"],
    "colon": ["colon"],
    "vertebra_T12": ["vertebrae_T12"],
    "aorta": ["aorta"],
    "inferior_vena_cava": ["inferior_vena_cava"],
    "spinal_cord": ["spinal_cord"],
    "autochthon": ["autochthon_left", "autochthon_right"],
    "costal_cartilages": ["costal_cartilages"],
}
LABELLED_SCANS = {
    "A": ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
    "B": ("example_ct_dicom", "example_seg_dicom.nii.gz"),
}
PRETRAINING_SCANS = ("example_ct.nii.gz", "example_ct_dicom", "aorta_report/ct_cropped.nii.gz")


def _shared_data() -> Path:
    configured = os.environ.get("CORALBAY_SHARED_DATA")
    root = Path(configured) if configured else REPOSITORY.parent / "shared" / "data"
    if not (root / "totalsegmentator").is_dir():
        raise SystemExit(f"needs the real CT in {root} (or set $CORALBAY_SHARED_DATA)")
    return root / "totalsegmentator"


def _cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(item.ru_utime + item.ru_stime for item in usage)


class _CPUBudget:
    """Stops training once the process has used `seconds` of CPU time since `started`."""

    def __init__(self, seconds: float, started: float) -> None:
        import lightning as L

        budget, start = seconds, started

        class Callback(L.Callback):
            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                if _cpu_seconds() - start >= budget:
                    trainer.should_stop = True

        self.callback = Callback()


def pretrain(workdir: Path, cpu_minutes: float, overrides: list[str]) -> dict[str, Any]:
    """Runs the CPU pretraining until `trainer.max_steps` or `cpu_minutes` of CPU time.

    The CPU time counts everything from reading the scans on, in this process and its children.
    """
    from eva_coralbay.pretraining.config import load_config
    from eva_coralbay.pretraining.train import run_pretraining

    shared = _shared_data()
    config = load_config(
        CONFIG,
        [
            f"output={workdir / 'run'}",
            f"data.paths=[{','.join(str(shared / scan) for scan in PRETRAINING_SCANS)}]",
            *overrides,
        ],
    )
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    budget = _CPUBudget(cpu_minutes * 60, cpu_started)
    checkpoint = run_pretraining(config, fresh=True, extra_callbacks=[budget.callback])
    return {
        "config": config,
        "checkpoint": checkpoint,
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu_seconds() - cpu_started,
    }


@functools.cache
def labelled_volumes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scans A and B with their label maps, standardised with CoralBay's profile."""
    from eva_coralbay.data.profile import CORALBAY_PROFILE
    from eva_coralbay.data.readers import read_label, read_scan

    shared = _shared_data()
    volumes = {}
    for scan_name, (image_file, label_file) in LABELLED_SCANS.items():
        image = read_scan(shared / image_file)
        image, labels = CORALBAY_PROFILE.apply(image, read_label(shared / label_file, image))
        assert labels is not None
        volumes[scan_name] = (image[0].numpy(), labels[0].numpy())
    return volumes


def probe_patches(patch: tuple[int, int, int], per_class: int, seed: int) -> dict[str, Any]:
    """Patches centred on random voxels of each organ, per labelled scan: (N, 1, *patch), (N,)."""
    import torch

    from eva_coralbay.data.profile import CORALBAY_PROFILE

    names = json.loads((_shared_data() / "labels_total_v2.json").read_text())
    ids = {name: int(label) for label, name in names.items()}
    air = float(CORALBAY_PROFILE.output_range[0])
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {}
    for scan_name, (volume, label_map) in labelled_volumes().items():
        patches, targets = [], []
        for target, members in enumerate(CLASSES.values()):
            voxels = np.argwhere(np.isin(label_map, [ids[member] for member in members]))
            picks = rng.choice(len(voxels), size=min(per_class, len(voxels)), replace=False)
            for centre in voxels[picks]:
                patches.append(_patch(volume, centre, patch, air))
                targets.append(target)
        result[scan_name] = (
            torch.from_numpy(np.stack(patches))[:, None].float(),
            np.asarray(targets),
        )
    return result


def _patch(
    volume: np.ndarray, centre: np.ndarray, size: tuple[int, int, int], fill: float
) -> np.ndarray:
    start = centre - np.asarray(size) // 2
    out = np.full(size, fill, dtype=np.float32)
    source = tuple(
        slice(max(a, 0), min(a + s, n)) for a, s, n in zip(start, size, volume.shape, strict=True)
    )
    target = tuple(slice(s.start - a, s.stop - a) for s, a in zip(source, start, strict=True))
    out[target] = volume[source]
    return out


def embed(encoder: Any, patches: Any, batch_size: int = 8) -> np.ndarray:
    """Frozen multi-scale embeddings (N, 24·F) in eval mode."""
    import torch

    encoder.eval()
    with torch.no_grad():
        chunks = [
            encoder.embed_multiscale(patches[start : start + batch_size])
            for start in range(0, len(patches), batch_size)
        ]
    return torch.cat(chunks).numpy()


def probe(features: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
    """Balanced accuracy of logistic regression and k-NN fit on one scan, tested on the other."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores: dict[str, list[float]] = {"logistic": [], "knn": []}
    for train, test in (("A", "B"), ("B", "A")):
        classifiers = {
            "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
            "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=10)),
        }
        for name, classifier in classifiers.items():
            classifier.fit(features[train], targets[train])
            predicted = classifier.predict(features[test])
            scores[name].append(balanced_accuracy_score(targets[test], predicted))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _encoders(config: Any, checkpoint: Path, random_seeds: list[int]) -> dict[str, Any]:
    import lightning as L
    import torch

    from eva_coralbay.pretraining.module import DINOPretraining

    encoders = {}
    for seed in random_seeds:
        L.seed_everything(seed, verbose=False)
        encoders[f"random (seed {seed})"] = DINOPretraining(config.to_dict()).teacher.backbone
    pretrained = DINOPretraining(config.to_dict())
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    pretrained.load_state_dict(state)
    encoders["pretrained"] = pretrained.teacher.backbone
    return encoders


def plot(metrics_csv: Path, figure: Path) -> dict[str, Any]:
    """Loss and collapse signals per step, as a small PNG; returns the first and last values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.read_csv(metrics_csv).groupby("step").last()
    panels = {
        "train/dino_loss": "DINO loss (cross-entropy)",
        "train/teacher_entropy": "teacher entropy (nats)",
        "train/kl": "KL(teacher || student)",
        "train/embedding_std": "embedding std x sqrt(d)",
    }
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.6), dpi=80)
    for axis, (column, title) in zip(axes, panels.items(), strict=True):
        axis.plot(frame.index, frame[column], linewidth=1)
        axis.plot(frame.index, frame[column].rolling(10, min_periods=1).mean(), linewidth=2)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(figure)
    plt.close(fig)
    window = max(1, min(10, len(frame) // 4))
    return {
        column: {
            "first": float(frame[column].iloc[:window].mean()),
            "last": float(frame[column].iloc[-window:].mean()),
        }
        for column in [*panels, "train/teacher_batch_entropy"]
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.pretraining_probe", description=__doc__)
    parser.add_argument(
        "--cpu-minutes", type=float, default=10.0, help="pretraining CPU-time cap (all threads)"
    )
    parser.add_argument("--workdir", type=Path, help="run folder (default: a temporary one)")
    parser.add_argument("--per-class", type=int, default=30, help="patches per organ per scan")
    parser.add_argument("--probe-seeds", type=int, default=2, help="patch-sampling seeds")
    parser.add_argument("--random-seeds", type=int, default=3, help="random-init encoders")
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 spends CPU time best)"
    )
    parser.add_argument(
        "--set", dest="overrides", nargs="+", default=[], help="pretraining config overrides"
    )
    args = parser.parse_args([] if argv is None else argv)

    import torch

    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coralbay-probe-"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; workdir {workdir}"
    )
    run = pretrain(workdir, args.cpu_minutes, args.overrides)
    config = run["config"]
    final = torch.load(run["checkpoint"], map_location="cpu", weights_only=True)
    print(
        f"pretrained {final['global_step']} steps in {run['wall_s'] / 60:.1f} min wall, "
        f"{run['cpu_s'] / 60:.1f} CPU-min"
    )
    metrics_csv = sorted((workdir / "run" / "csv").glob("version_*/metrics.csv"))[-1]
    signals = plot(metrics_csv, args.figure)

    patch = tuple(config.crops.global_size)
    encoders = _encoders(config, run["checkpoint"], list(range(args.random_seeds)))
    results: dict[str, list[dict[str, float]]] = {name: [] for name in encoders}
    started = time.perf_counter()
    for probe_seed in range(args.probe_seeds):
        data = probe_patches(patch, args.per_class, seed=100 + probe_seed)  # type: ignore[arg-type]
        targets = {scan: labels for scan, (_, labels) in data.items()}
        for name, encoder in encoders.items():
            features = {scan: embed(encoder, patches) for scan, (patches, _) in data.items()}
            results[name].append(probe(features, targets))
    print(
        f"probe: {len(CLASSES)} organs, patches {patch} voxels, "
        f"{sum(len(t) for t in targets.values())} patches per seed, "
        f"{time.perf_counter() - started:.0f} s"
    )

    summary = {
        name: {
            metric: (
                float(np.mean([r[metric] for r in runs])),
                float(np.std([r[metric] for r in runs])),
            )
            for metric in ("logistic", "knn")
        }
        for name, runs in results.items()
    }
    print("\n| encoder | logistic regression | 10-NN |\n|---|---|---|")
    for name, scores in summary.items():
        cells = " | ".join(f"{mean:.3f} ± {std:.3f}" for mean, std in scores.values())
        print(f"| {name} | {cells} |")
    print("\ncollapse signals (mean of the first / last 10 steps):")
    for column, values in signals.items():
        print(f"  {column}: {values['first']:.3f} -> {values['last']:.3f}")
    report = {
        "steps": int(final["global_step"]),
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "signals": signals,
        "probe": summary,
        "overrides": args.overrides,
    }
    (workdir / "probe_results.json").write_text(json.dumps(report, indent=2))
    print(f"\nresults: {workdir / 'probe_results.json'}; figure: {args.figure}")


if __name__ == "__main__":
    main(sys.argv[1:])
