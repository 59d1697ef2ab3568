"""`coralbay robustness`: how a model's whole-scan embedding and probe move under perturbations."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from eva_coralbay.cli import _arguments as arguments

ORDER = 37


def register(subparsers: Any) -> None:
    """Adds the `robustness` subcommand."""
    parser = subparsers.add_parser(
        "robustness",
        help="measure how a model's embedding changes under HU window, spacing, orientation "
        "and flips",
        description=(
            "Embeds every scan with the model's own profile, then again under each perturbation "
            "(HU window centre +-100 HU, width x0.75 and x1.5, soft-tissue and lung windows; "
            "1.0 and 2.0 mm grids; RAS and LPS input, which the profile must standardise to the "
            "same voxels; left-right and superior-inferior flips), and writes the cosine "
            "similarity of each perturbed embedding to the unperturbed one, per scan and on "
            "average, as a JSON robustness record (docs/evaluation.md). For a scan-labelled task "
            "(--task scan_table or cc-ccii) it also fits a linear probe on the unperturbed "
            "training embeddings and reports its balanced accuracy on the validation scans "
            "under each perturbation, and the change."
        ),
    )
    parser.add_argument(
        "--model",
        default="radiology/coralbay",
        help="backbone registry name; also picks the preprocessing profile unless the "
        "checkpoint's config.json records its own (default: radiology/coralbay)",
    )
    parser.add_argument(
        "--checkpoint", help="weights instead of the model's own: file, folder, URL or HF id"
    )
    parser.add_argument(
        "--model-kwargs",
        type=arguments.json_object,
        default={},
        help="JSON object of the registry model's keyword arguments (not with --checkpoint)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        nargs="+",
        metavar="SCAN",
        help="scans: files, DICOM series folders, folders, globs or manifests",
    )
    source.add_argument(
        "--task",
        help="a task id: its validation scans. A segmentation task, decathlon_format (any "
        "Decathlon-layout dataset), cc-ccii or scan_table (any scan table); the last two are "
        "scan-labelled and get the probe's change too",
    )
    parser.add_argument(
        "--data-root",
        type=pathlib.Path,
        help="with --task: the task's data in its native layout (scan_table: the table, or "
        "its folder holding scans.csv)",
    )
    parser.add_argument(
        "--task-id",
        help="with --task: the task id the record names (e.g. a tasks.yaml task read with "
        "--task scan_table); default: --task",
    )
    parser.add_argument("--output", type=pathlib.Path, required=True, help="the JSON record")
    parser.add_argument(
        "--submit",
        action="store_true",
        help="also board the record (coralbay leaderboard submit --robustness), replacing the "
        "model's previous one, which the leaderboard keeps in its history",
    )
    parser.add_argument(
        "--leaderboard-root",
        type=pathlib.Path,
        help="where --submit writes (default: the repository's leaderboard/)",
    )
    parser.add_argument(
        "--model-id", help="with --submit: the model's leaderboard id (default: from --model)"
    )
    parser.add_argument(
        "--window",
        action="append",
        default=[],
        metavar="LOW,HIGH",
        help="another HU window to measure, e.g. --window=-160,240; repeatable",
    )
    parser.add_argument(
        "--perturbations",
        default="all",
        help="comma-separated perturbation names or kinds (window, spacing, orientation, flip); "
        "default: all",
    )
    parser.add_argument("--roi-size", type=int, default=96, help="window edge in voxels")
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap fraction")
    parser.add_argument("--sw-batch-size", type=int, default=2, help="windows per encoder call")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast dtype"
    )
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"coralbay robustness: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Measures, writes the record and prints a summary; returns the exit status."""
    from eva_coralbay.evaluation import robustness
    from eva_coralbay.leaderboard import robustness_record

    try:
        windows = [robustness.parse_window(text) for text in args.window]
    except ValueError as error:
        return _fail(f"--window: {error}")
    if not args.submit and (args.model_id or args.leaderboard_root):
        return _fail("--model-id and --leaderboard-root go with --submit")
    if args.task is not None and args.data_root is None:
        return _fail("--task needs --data-root (the task's data in its native layout)")
    if args.task_id is not None and args.task is None:
        return _fail("--task-id names the task of --task")
    from eva_coralbay.data import embed
    from eva_coralbay.data.profile import profile_of_model
    from eva_coralbay.data.readers import ScanReadError
    from eva_coralbay.data.scans import find_scans

    try:
        encoder = embed.load_model(args.model, args.checkpoint, args.model_kwargs)
        profile = profile_of_model(encoder, args.model)
        labelled = None
        scans: list[Any]
        if args.task is not None:
            # A scan-labelled task reads its scans through its adapter, with the profile.
            labelled = robustness.labelled_task_scans(args.task, args.data_root, profile)
            scans = (
                list(labelled.val)
                if labelled is not None
                else robustness.task_scans(args.task, args.data_root)
            )
        else:
            scans = [str(scan) for scan in find_scans(args.data)]
        perturbations = robustness.select(
            robustness.default_perturbations(profile, windows), args.perturbations
        )
        # coralbay embed's embedder checks the window settings, picks the device and moves
        # the encoder there, before any scan is read.
        embedder = embed.ScanEmbedder(
            encoder,
            profile,
            roi_size=args.roi_size,
            overlap=args.overlap,
            sw_batch_size=args.sw_batch_size,
            device=args.device,
            precision=args.precision,
        )
        settings = robustness.EmbeddingSettings(
            roi_size=(args.roi_size,) * 3,
            overlap=args.overlap,
            sw_batch_size=args.sw_batch_size,
            precision=args.precision,
            device=embedder.device,
        )
        measured = robustness.measure(
            embedder.encoder,
            profile,
            scans,
            perturbations,
            settings,
            on_scan=lambda scan: print(f"measuring {scan}", file=sys.stderr),
        )
        probe = None
        if labelled is not None:
            train_embeddings = robustness.embed_scans(
                embedder.encoder,
                profile,
                labelled.train,
                settings,
                on_scan=lambda scan: print(f"embedding {scan} (probe)", file=sys.stderr),
            )
            probe = robustness.probe_change(measured, train_embeddings, labelled)
        written = robustness_record.write_record(
            robustness.build_record(
                measured,
                model=args.model,
                checkpoint=None if args.checkpoint is None else str(args.checkpoint),
                checkpoint_sha256=embed.weights_hash(encoder),
                profile=profile,
                settings=settings,
                task=None
                if args.task is None
                else {"id": args.task_id or args.task, "split": "val"},
                probe=probe,
            ),
            args.output,
        )
    except ScanReadError as error:
        return _fail(f"cannot read a scan: {error}")
    except (ValueError, OSError) as error:
        return _fail(str(error))
    for item in measured.perturbations:
        change = (
            f"  probe {probe.per_perturbation[item['name']]['change']:+.3f}"
            if probe is not None
            else ""
        )
        print(f"{item['name']:<32} mean cosine {item['mean_cosine']:.6f}{change}")
    if probe is not None:
        print(
            f"probe: balanced accuracy {probe.summary['balanced_accuracy']:.3f} unperturbed "
            f"({probe.summary['train_scans']} train, {probe.summary['val_scans']} val scans)"
        )
    print(f"wrote {written} ({len(scans)} scans, {len(perturbations)} perturbations)")
    if args.submit:
        from eva_coralbay.leaderboard import LeaderboardError, paths, robustness_board

        root = args.leaderboard_root or paths.default_root()
        try:
            boarded = robustness_board.submit(written, root, model_id=args.model_id, replace=True)
        except LeaderboardError as error:
            return _fail(f"--submit: {error}")
        print(f"submitted as {boarded.path} (run `coralbay leaderboard build --root {root}`)")
    if measured.orientation_identical is False:
        return _fail(
            "LPS and RAS input of the same scan did not give identical voxels after the "
            "profile (see identical_after_profile in the record): the profile is broken"
        )
    return 0
