"""`coralbay demo`: the main job, from data to a built leaderboard, in one command."""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
from typing import Any

ORDER = 1


def register(subparsers: Any) -> None:
    """Adds the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="pretrain, evaluate in eva and publish to a leaderboard, on synthetic CT by default",
        description=(
            "Writes a small labelled CT benchmark of synthetic torso phantoms (or uses --data), "
            "pretrains a CoralBay encoder with DINO and exports it, evaluates it and "
            "radiology/coralbay_random with `eva fit` (segmentation) and `eva predict_fit` "
            "(organ-patch probe), submits the results to a leaderboard folder and builds it."
        ),
        epilog=(
            "examples:\n"
            "  coralbay demo                       # synthetic phantoms, minutes on a CPU\n"
            "  coralbay demo --data /data/Task09_Spleen --dataset MSDSpleen --preset full"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        default=pathlib.Path("demo_output"),
        help="folder for data, checkpoints, runs, logs and the leaderboard (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=pathlib.Path,
        help="a real benchmark's folder in its native layout (default: synthetic phantoms)",
    )
    parser.add_argument(
        "--dataset",
        default="DecathlonFormat",
        help="the adapter of --data: a class name or task id such as BTCV, MSDSpleen or "
        "DecathlonFormat (default: %(default)s)",
    )
    parser.add_argument(
        "--preset",
        choices=("smoke", "tiny", "full"),
        help="step sizes: smoke (a few steps per stage, to check the chain), tiny (minutes on "
        "a CPU) or full (paper-scale pretraining, eva's protocol); default: tiny for the "
        "phantoms, full with --data",
    )
    parser.add_argument("--pretrain-steps", type=int, help="override the pretraining steps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Runs the demo."""
    from rich.console import Console

    from eva_coralbay import demo

    console = Console(highlight=False, soft_wrap=True)  # paths stay whole when piped
    # A terminated demo unwinds (and stops its running step) instead of dying on the spot.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    preset = demo.PRESETS[args.preset or ("full" if args.data else "tiny")]
    output = args.output.resolve()
    console.print(f"[bold]coralbay demo[/bold]: preset {preset.name}, output {output}")
    try:
        if args.data is None:
            with console.status("writing the synthetic phantom benchmark"):
                dataset = demo.write_phantom_benchmark(output / "data", preset.phantoms)
        else:
            dataset = demo.real_benchmark(args.data.resolve(), args.dataset)
        console.print(
            f"data: {dataset.root} (segmentation task {dataset.segmentation_task}, probe "
            f"{dataset.organs_task}, {len(dataset.pretraining_scans)} scans for pretraining)"
        )
        steps = demo.plan(output, dataset, preset, args.pretrain_steps)
        demo.run_steps(steps, output / "logs", echo=console.print)
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        console.print("coralbay demo: error:", style="red", end=" ")
        console.print(str(error), markup=False)  # commands hold [a, b] lists, not markup
        return 1
    print(demo.summary(output), file=sys.stdout)
    return 0
