"""`coralbay export`: a pretraining checkpoint's encoder as model.safetensors + config.json."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

ORDER = 21


def register(subparsers: Any) -> None:
    """Adds the `export` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a pretraining checkpoint's encoder for eva and the loader",
        description=(
            "Writes the teacher encoder of a `coralbay pretrain` checkpoint as a Hugging Face "
            "style folder (model.safetensors + config.json), which `radiology/coralbay` with "
            "checkpoint=DIR and the weights loader accept."
        ),
    )
    parser.add_argument("checkpoint", type=pathlib.Path, help="a pretraining .ckpt file")
    parser.add_argument("--output", type=pathlib.Path, required=True, help="folder to write")
    parser.add_argument(
        "--branch",
        choices=("teacher", "student"),
        default="teacher",
        help="which encoder to export (default: the EMA teacher, as DINO does)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a different export in the folder"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exports the checkpoint's encoder."""
    from eva_coralbay.pretraining.export import export_encoder

    try:
        directory = export_encoder(
            args.checkpoint, args.output, branch=args.branch, overwrite=args.overwrite
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"coralbay export: error: {error}", file=sys.stderr)
        return 2
    print(f"exported the {args.branch} encoder to {directory}")
    return 0
