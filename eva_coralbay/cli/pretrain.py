"""`coralbay pretrain`: DINO pretraining of a CoralBay encoder from a YAML config."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import Any

ORDER = 20


def register(subparsers: Any) -> None:
    """Adds the `pretrain` subcommand."""
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a CoralBay encoder with DINO on unlabeled CT",
        description=(
            "Self-distillation (DINO) of a CoralBay encoder on its concatenated multi-scale "
            "embedding, from a YAML config (configs/pretrain/). A rerun with the same --output "
            "resumes from its last.ckpt. Export the result with `coralbay export`."
        ),
        epilog=(
            "example: coralbay pretrain --config configs/pretrain/smoke.yaml "
            "--data ../shared/data/totalsegmentator/example_ct.nii.gz --output outputs/smoke "
            "--set optim.lr=2e-4 crops.num_local=0"
        ),
    )
    parser.add_argument(
        "--config", type=pathlib.Path, help="YAML config (default: built-in defaults)"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        action="extend",
        metavar="PATH",
        help="CT files, DICOM folders, folders, globs or manifests (.csv/.parquet/.txt); "
        "replaces data.paths",
    )
    parser.add_argument("--output", type=pathlib.Path, help="run folder; replaces output")
    parser.add_argument("--max-steps", type=int, help="optimiser steps; replaces trainer.max_steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides such as optim.lr=1e-4 trainer.devices=2 data.paths=[a,b]",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", metavar="CKPT", help="resume from this checkpoint instead of OUTPUT's last.ckpt"
    )
    resume.add_argument(
        "--fresh", action="store_true", help="start from scratch (refused if OUTPUT holds a run)"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Resolves the config and runs (or resumes) the pretraining."""
    from eva_coralbay.data.readers import ScanReadError
    from eva_coralbay.pretraining.config import load_config
    from eva_coralbay.pretraining.scans import ScanError

    overrides = list(args.overrides)
    if args.output is not None:
        overrides.append(f"output={args.output}")
    if args.max_steps is not None:
        overrides.append(f"trainer.max_steps={args.max_steps}")
    try:
        config = load_config(args.config, overrides)
        if args.data:
            config.data.paths = [str(path) for path in args.data]
    except (ValueError, FileNotFoundError) as error:
        print(f"coralbay pretrain: error: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0

    from eva_coralbay.pretraining.train import run_pretraining

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        last = run_pretraining(config, resume=args.resume, fresh=args.fresh)
    except (ScanError, ScanReadError, FileNotFoundError, FileExistsError) as error:
        print(f"coralbay pretrain: error: {error}", file=sys.stderr)
        return 2
    print(f"final checkpoint: {last}")
    print(f"export the teacher encoder with: coralbay export {last} --output DIR")
    return 0
