"""`coralbay embed`: whole-scan multi-scale embeddings of CT scans into a parquet table."""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from eva_coralbay.data.embed import ScanEmbedding

ORDER = 30

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) as a pair.

    Raises:
        argparse.ArgumentTypeError: Naming the value and the accepted form.
    """
    match = _SHARD.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/8), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(
            f"shard {text!r} is out of range: I must be in 0..N-1 and N at least 1"
        )
    return index, count


def part_path(out: pathlib.Path, index: int, count: int) -> pathlib.Path:
    """The part file shard `index` of `count` writes beside `out`."""
    stem = out.name[: -len(".parquet")] if out.name.endswith(".parquet") else out.name
    return out.with_name(f"{stem}.part-{index:05d}-of-{count:05d}.parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `embed` subcommand."""
    parser = subparsers.add_parser(
        "embed",
        help="embed CT scans (files, DICOM folders, folders, globs, manifests) into parquet",
        description=(
            "Standardises each scan with the model's preprocessing profile, runs the encoder "
            "over the whole volume in sliding windows and pools the feature maps into the "
            "multi-scale embedding as the windows stream by; writes one row per scan. Reruns "
            "resume: scans already in --out with the same model, weights and profile are "
            "skipped. --shard I/N embeds one N-th of the scans into a part file; --merge joins "
            "the parts."
        ),
    )
    parser.add_argument(
        "scans",
        nargs="*",
        metavar="SCAN",
        help="NIfTI / MetaImage / NRRD file, DICOM series folder, folder of scans, glob, or "
        "manifest (.csv/.parquet with a 'path' column, .txt with one path per line)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="PART",
        default=None,
        help="join part files written with --shard into --out (no scans are embedded)",
    )
    parser.add_argument(
        "--model",
        default="radiology/coralbay",
        help="backbone registry name; also picks the preprocessing profile unless the "
        "checkpoint's config.json records its own (default: radiology/coralbay)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="weights to use instead of the model's own: file, folder, URL or Hugging Face id",
    )
    parser.add_argument(
        "--out",
        default="embeddings.parquet",
        help="parquet file to write; with --shard I/N the part OUT.part-I-of-N.parquet "
        "beside it (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out instead of resuming it (needed when it was embedded "
        "with another model, weights, profile or windows)",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="embed only the scans whose position in the sorted list is I modulo N",
    )
    parser.add_argument(
        "--roi-size", type=int, default=96, help="sliding-window edge in voxels (default: 96)"
    )
    parser.add_argument(
        "--overlap", type=float, default=0.5, help="window overlap fraction (default: 0.5)"
    )
    parser.add_argument(
        "--sw-batch-size", type=int, default=2, help="windows per encoder call (default: 2)"
    )
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="autocast dtype of the encoder (bf16 on CPU or GPU, fp16 on GPU; default fp32)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        default=2,
        help="scans read and standardised ahead by a reader thread (default: 2)",
    )
    parser.add_argument(
        "--save-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="rewrite the table (atomically) at most this often while embedding, so a crash "
        "keeps what was done (default: 60; 0: after every scan)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first scan that cannot be read instead of reporting and skipping it",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Embeds the scans (or merges parts) and writes the table; returns the exit status."""
    from eva_coralbay.data.readers import ScanReadError

    try:
        if args.merge is not None:
            if args.scans:
                raise ValueError("give scans to embed or --merge PARTS, not both")
            return _merge([pathlib.Path(part) for part in args.merge], args)
        if not args.scans:
            raise ValueError("no scans given (or --merge PARTS to join part files)")
        return _embed(args)
    except (ScanReadError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from eva_coralbay.data import embed
    from eva_coralbay.data.profile import profile_of_model
    from eva_coralbay.data.scans import find_scans

    out = pathlib.Path(args.out)
    scans = [str(scan) for scan in find_scans(args.scans)]
    if args.shard is not None:
        index, count = args.shard
        # Every shard sees the same sorted list, so the N shards partition it exactly.
        scans = sorted(scans)[index::count]
        out = part_path(out, index, count)
    encoder = embed.load_model(args.model, args.checkpoint)
    # An export records the profile it was pretrained with; --model names it otherwise.
    profile = profile_of_model(encoder, args.model)
    embedder = embed.ScanEmbedder(
        encoder,
        profile,
        roi_size=args.roi_size,
        overlap=args.overlap,
        sw_batch_size=args.sw_batch_size,
        device=args.device,
        precision=args.precision,
    )
    checkpoint_hash = embed.weights_hash(encoder)
    provenance = embed.provenance(
        model=args.model,
        checkpoint_hash=checkpoint_hash,
        profile=profile,
        roi_size=embedder.roi_size,
        overlap=args.overlap,
        precision=args.precision,
    )
    done = _resumable_rows(out, provenance, overwrite=args.overwrite)
    embedded = set(done["scan"])
    todo = [scan for scan in scans if scan not in embedded]
    if len(done):
        print(f"resuming {out}: {len(done)} scans already embedded, {len(todo)} to go")

    def table_of(results: list[ScanEmbedding]) -> pd.DataFrame:
        new = embed.embeddings_table(
            results,
            model=args.model,
            checkpoint=None if args.checkpoint is None else str(args.checkpoint),
            checkpoint_hash=checkpoint_hash,
            profile=profile,
            roi_size=embedder.roi_size,
            overlap=args.overlap,
            precision=args.precision,
        )
        return pd.concat([done, new], ignore_index=True) if len(done) else new

    def save(results: list[ScanEmbedding]) -> None:
        embed.write_table(table_of(results), out, overwrite=True, table_provenance=provenance)

    results, skipped = _embed_with_progress(embedder, todo, args, save)
    for problem in skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    if not results and not len(done) and (todo or args.shard is None):
        print("error: no scan could be embedded; nothing written", file=sys.stderr)
        return 1
    # Written even when nothing changed or the shard has no scans: a part for every shard.
    save(results)
    total = len(done) + len(results)
    print(f"wrote {total} embeddings to {out} ({len(results)} new, {len(skipped)} skipped)")
    return 0


def _resumable_rows(
    out: pathlib.Path, provenance: dict[str, Any], *, overwrite: bool
) -> pd.DataFrame:
    """The rows of an existing `out` to keep: all of them if it matches, none with --overwrite.

    Raises:
        ValueError: When `out` was embedded differently and `overwrite` is False.
    """
    import pandas as pd

    from eva_coralbay.data import embed

    if overwrite or not out.exists():
        return pd.DataFrame({"scan": pd.Series([], dtype=object)})
    differences = embed.provenance_differences(provenance, embed.read_provenance(out))
    if differences:
        raise ValueError(
            f"{out} exists and was embedded differently ({'; '.join(differences)}); "
            "pass --overwrite to replace it, or choose another --out"
        )
    return pd.read_parquet(out)


def _embed_with_progress(
    embedder: Any, scans: Sequence[str], args: argparse.Namespace, save: Any
) -> tuple[list[ScanEmbedding], list[str]]:
    """Embeds `scans` under a rich progress bar, saving every `--save-every` seconds.

    Whatever was embedded is saved before an error (or Ctrl-C) propagates.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    results: list[ScanEmbedding] = []
    skipped: list[str] = []
    last_save = time.monotonic()
    unsaved = 0
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("embedding", total=len(scans))
        try:
            for scan, result in embedder.embed_many(scans, prefetch=max(args.prefetch, 0)):
                if isinstance(result, Exception):
                    if args.strict:
                        raise result
                    # Plain stderr (rich redirects it above the bar): no wrapping of long paths.
                    print(f"skipping unreadable scan: {result}", file=sys.stderr)
                    skipped.append(str(result))
                else:
                    results.append(result)
                    unsaved += 1
                progress.update(task, advance=1, description=pathlib.Path(scan).name)
                if unsaved and time.monotonic() - last_save >= args.save_every:
                    save(results)
                    last_save, unsaved = time.monotonic(), 0
        except BaseException:
            if unsaved:
                save(results)
            raise
    return results, skipped


def _merge(parts: list[pathlib.Path], args: argparse.Namespace) -> int:
    import pandas as pd

    from eva_coralbay.data import embed

    out = pathlib.Path(args.out)
    if out.resolve() in {part.resolve() for part in parts}:
        raise ValueError(f"--out {out} is one of the parts; write the merge elsewhere")
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    missing = [str(part) for part in parts if not part.is_file()]
    if missing:
        raise ValueError(f"no such part file: {', '.join(missing)}")
    first = embed.read_provenance(parts[0])
    if first is None:
        raise ValueError(f"{parts[0]} records no provenance: not a part written by coralbay embed")
    for part in parts[1:]:
        differences = embed.provenance_differences(first, embed.read_provenance(part))
        if differences:
            raise ValueError(
                f"cannot merge {part} with {parts[0]}: embedded differently "
                f"({'; '.join(differences)})"
            )
    tables = [pd.read_parquet(part) for part in parts]
    merged = pd.concat([table for table in tables if len(table)] or tables, ignore_index=True)
    duplicates = int(merged["scan"].duplicated().sum())
    if duplicates:
        # Overlapping parts (a shard run twice with different N, say): the first copy stays.
        print(f"warning: {duplicates} scans appear in more than one part; kept the first")
        merged = merged.drop_duplicates("scan", keep="first").reset_index(drop=True)
    embed.write_table(merged, out, overwrite=args.overwrite, table_provenance=first)
    print(f"merged {len(parts)} parts into {out}: {len(merged)} embeddings")
    return 0
