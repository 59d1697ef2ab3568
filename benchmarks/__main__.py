"""Runs the benchmarks: `python -m benchmarks [NAME ...]` (all when no name is given)."""

import argparse
import importlib
import pkgutil
import sys

import benchmarks


def _available() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if not info.name.startswith("_")
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {_available()})"
    )
    args = parser.parse_args()
    names = args.names or _available()
    unknown = sorted(set(names) - set(_available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {_available()}")
    for name in names:
        print(f"== benchmark: {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
