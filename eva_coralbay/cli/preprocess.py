"""`coralbay preprocess`: validate a benchmark and cache its standardised volumes once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ORDER = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `preprocess` subcommand."""
    parser = subparsers.add_parser(
        "preprocess",
        help="validate a benchmark and cache its standardised volumes",
        description=(
            "Checks every image/label pair of a benchmark in its native layout, then writes each "
            "case once, standardised with a model's preprocessing profile, as memory-mappable "
            ".npy arrays plus a parquet manifest. Adapters read from this cache when it holds a "
            "fresh copy. Re-running only recomputes cases whose source files or profile changed."
        ),
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="adapter class or task id, e.g. BTCV, msd_task9_spleen, TotalSegmentatorV2",
    )
    parser.add_argument(
        "--root",
        required=True,
        type=Path,
        help="the benchmark's folder (for ScanTable: the scan table, or its folder)",
    )
    parser.add_argument(
        "--profile",
        default="radiology/coralbay",
        help="a model registry name or a JSON file with a profile (default: radiology/coralbay)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default: $CORALBAY_CACHE or ~/.cache/coralbay/preprocessed)",
    )
    parser.add_argument(
        "--split", default=None, help="only this split (default: every split of the benchmark)"
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="accept fewer cases than the complete benchmark (a subset or a synthetic demo)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validates the dataset, then fills the cache; returns the exit status."""
    from eva_coralbay.data import cache as cache_store
    from eva_coralbay.data.adapters import DatasetValidationError, adapter_by_name

    try:
        adapter_class = adapter_by_name(args.dataset)
        profile = _profile_argument(args.profile)
        cache_root = args.cache or cache_store.default_cache_dir()
        dataset = adapter_class(
            root=str(args.root),
            split=args.split,
            profile=profile,
            cache=str(cache_root),
            allow_incomplete=args.allow_incomplete,
        )
    except ValueError as error:
        print(f"coralbay preprocess: {error}", file=sys.stderr)
        return 2
    if not args.root.exists():  # a folder, or a scan table (ScanTable)
        print(dataset.obtain_instructions(), file=sys.stderr)
        return 2
    dataset.configure()
    try:
        dataset.validate()
    except DatasetValidationError as error:
        print(f"coralbay preprocess: {error}", file=sys.stderr)
        return 1
    total = len(dataset)

    def progress(case_id: str, outcome: str, counter: list[int] = [0]) -> None:  # noqa: B006
        counter[0] += 1
        print(f"[{counter[0]}/{total}] {case_id}: {outcome}", flush=True)

    report = cache_store.preprocess(dataset, cache_root, on_case=progress)
    print(
        f"{adapter_class.__name__}: {len(report.written)} written, {len(report.reused)} reused, "
        f"{len(report.rehashed)} unchanged after rehash, {len(report.removed_files)} stale files "
        f"removed -> {report.directory}"
    )
    return 0


def _profile_argument(value: str) -> str | dict[str, Any]:
    """A model name, or the contents of a JSON profile file."""
    path = Path(value)
    if value.endswith(".json") and path.is_file():
        return json.loads(path.read_text())
    return value
