"""The `coralbay` command line: one module per subcommand, each importing its layer lazily."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import eva_coralbay


def _subcommand_modules() -> list[ModuleType]:
    """Returns the subcommand modules of this package, ordered by their `ORDER` attribute.

    Every module here must stay cheap to import (no torch, no eva) so that `coralbay --help`
    answers at once; each imports its layer inside the function it runs.
    """
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda module: (getattr(module, "ORDER", 100), module.__name__))


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="coralbay",
        description=(
            "CoralBay, a self-supervised 3D CT foundation model for kaiko.ai's eva: "
            "pretrain, embed, evaluate and publish to the 3D radiology leaderboard."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"eva-coralbay {eva_coralbay.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `coralbay` command line.

    Args:
        argv: The arguments, without the program name; `sys.argv[1:]` when None.

    Returns:
        The process exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
