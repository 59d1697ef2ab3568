"""`coralbay embed`: whole-scan multi-scale embeddings of CT scans into one parquet table."""

from __future__ import annotations

import argparse
import pathlib
import sys

ORDER = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `embed` subcommand."""
    parser = subparsers.add_parser(
        "embed",
        help="embed CT scans (files, DICOM folders, folders of scans) into a parquet table",
        description=(
            "Standardises each scan with the model's preprocessing profile, runs the encoder "
            "over the whole volume in sliding windows and pools the stitched feature maps into "
            "the multi-scale embedding; writes one row per scan."
        ),
    )
    parser.add_argument(
        "scans",
        nargs="+",
        metavar="SCAN",
        help="NIfTI / MetaImage / NRRD file, DICOM series folder, or a folder of scans",
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
        "--out", default="embeddings.parquet", help="parquet file to write (default: %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--roi-size", type=int, default=96, help="sliding-window edge in voxels (default: 96)"
    )
    parser.add_argument(
        "--overlap", type=float, default=0.5, help="window overlap fraction (default: 0.5)"
    )
    parser.add_argument("--sw-batch-size", type=int, default=2, help="windows per encoder call")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="autocast dtype of the encoder (bf16 on CPU or GPU, fp16 on GPU; default fp32)",
    )
    parser.add_argument(
        "--skip-errors",
        action="store_true",
        help="leave out scans that cannot be read (listed on stderr) instead of stopping",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Embeds the scans and writes the table; returns the exit status."""
    from eva_coralbay.data.readers import ScanReadError

    out = pathlib.Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    try:
        return _embed(args, out)
    except (ScanReadError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _embed(args: argparse.Namespace, out: pathlib.Path) -> int:
    from eva_coralbay.data import embed
    from eva_coralbay.data.profile import profile_of_model
    from eva_coralbay.data.readers import ScanReadError
    from eva_coralbay.data.scans import find_scans

    scans = find_scans(args.scans)
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
    results, skipped = [], []
    for index, scan in enumerate(scans, start=1):
        print(f"[{index}/{len(scans)}] {scan}", file=sys.stderr)
        try:
            results.append(embedder.embed(scan))
        except ScanReadError as error:
            if not args.skip_errors:
                raise
            skipped.append(str(error))
    for problem in skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    if not results:
        print("error: no scan could be embedded; nothing written", file=sys.stderr)
        return 1
    table = embed.embeddings_table(
        results,
        model=args.model,
        checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        profile=profile,
        roi_size=embedder.roi_size,
        overlap=args.overlap,
    )
    embed.write_table(table, out, overwrite=args.overwrite)
    print(f"wrote {len(table)} embeddings of {len(results[0].embedding)} dims to {out}")
    return 0
