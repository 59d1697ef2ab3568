"""`coralbay leaderboard submit|build|validate|serve`: the 3D radiology leaderboard."""

from __future__ import annotations

import argparse
import contextlib
import pathlib
from typing import Any

ORDER = 50

_ROOT_HELP = (
    "the leaderboard folder (default: $CORALBAY_LEADERBOARD, else the leaderboard/ folder of "
    "the checkout you are in or that this package runs from, else ./leaderboard)"
)


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def register(subparsers: Any) -> None:
    """Adds `leaderboard` and its four subcommands."""
    parser = subparsers.add_parser(
        "leaderboard",
        help="submit eva results to the leaderboard, build and validate it",
        description=(
            "Keep a leaderboard of eva runs: `submit` turns an eva output folder into a "
            "validated entry, `build` writes the tables, heatmap and website, `validate` checks "
            "a folder, `serve` shows the website on localhost."
        ),
    )
    parser.set_defaults(run=lambda args: parser.print_help() or 0)
    commands = parser.add_subparsers(dest="leaderboard_command", metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        help="add an eva run (results.json + config.yaml) or a robustness record",
        description=(
            "Reads results.json and the config.yaml beside it, infers model (from the config's "
            "ModelFromRegistry model_name) and task (from its dataset classes, else the output "
            "folder name; a run on a subset of the labels is the task's variant <task>@<count>),"
            " validates, and writes submissions/<model>/<task>.json atomically. With "
            "--robustness FILE it adds a `coralbay robustness` record as "
            "robustness/<model>.json instead."
        ),
    )
    submit.add_argument(
        "path",
        type=pathlib.Path,
        nargs="?",
        help="results.json, its session folder or an OUTPUT_ROOT",
    )
    submit.add_argument(
        "--robustness",
        type=pathlib.Path,
        metavar="FILE",
        help="a `coralbay robustness` record to submit instead of an eva run (model id: "
        "--model, else the record's model name)",
    )
    submit.add_argument("--model", help="model id (lowercase slug); default: inferred")
    submit.add_argument("--task", help="task id; default: inferred")
    submit.add_argument("--stage", choices=("val", "test"), help="default: test if recorded")
    submit.add_argument(
        "--replace", action="store_true", help="replace an existing entry (kept in history/)"
    )
    submit.add_argument("--model-card", type=pathlib.Path, help="JSON file of model details")
    submit.add_argument("--display-name")
    submit.add_argument("--parameters", type=int)
    submit.add_argument("--embedding-dim", type=int)
    submit.add_argument(
        "--pretraining-datasets",
        type=_comma_list,
        help="comma-separated image collections or task ids the model was pretrained on",
    )
    submit.add_argument("--weights-source")
    submit.add_argument("--weights-sha256")
    submit.add_argument(
        "--per-case", type=pathlib.Path, help="per-case score parquet (default: beside results)"
    )
    submit.add_argument("--date", help="the entry's date, YYYY-MM-DD (default: today, UTC)")
    submit.add_argument("--root", type=pathlib.Path, help=_ROOT_HELP)
    submit.set_defaults(run=_run_submit)

    build = commands.add_parser(
        "build", help="write leaderboard.parquet, README.md, heatmap.png/.svg and site/"
    )
    build.add_argument("--root", type=pathlib.Path, help=_ROOT_HELP)
    build.add_argument(
        "--top", type=int, default=30, help="models shown in the heatmap (default: 30)"
    )
    build.set_defaults(run=_run_build)

    validate = commands.add_parser(
        "validate", help="check every submission of a leaderboard folder; nonzero on problems"
    )
    validate.add_argument("--root", type=pathlib.Path, help=_ROOT_HELP)
    validate.set_defaults(run=_run_validate)

    serve = commands.add_parser(
        "serve",
        help="serve the built website (site/) on localhost for a quick look",
        description=(
            "Serves the root's site/ folder (written by `build`) with Python's http.server on "
            "127.0.0.1 and prints its address; Ctrl-C stops. The pages work from the file "
            "system too (open site/index.html)."
        ),
    )
    serve.add_argument("--root", type=pathlib.Path, help=_ROOT_HELP)
    serve.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)"
    )
    serve.set_defaults(run=_run_serve)


def _root(args: argparse.Namespace) -> pathlib.Path:
    from eva_coralbay.leaderboard import paths

    return args.root if args.root is not None else paths.default_root()


def _error(message: str) -> int:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"error: {message}", markup=False, style="red"
    )
    return 1


def _run_submit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from eva_coralbay.leaderboard import LeaderboardError
    from eva_coralbay.leaderboard.submit import ModelDetails, submit_run

    root = _root(args)
    if (args.path is None) == (args.robustness is None):
        return _error("give an eva run (PATH) or a robustness record (--robustness FILE)")
    if args.robustness is not None:
        return _submit_robustness(args, root)
    try:
        card = ModelDetails.from_card(args.model_card) if args.model_card else ModelDetails()
        flags = ModelDetails(
            display_name=args.display_name,
            parameters=args.parameters,
            embedding_dim=args.embedding_dim,
            pretraining_datasets=args.pretraining_datasets,
            weights_source=args.weights_source,
            weights_sha256=args.weights_sha256,
        )
        submission = submit_run(
            args.path,
            root,
            model_id=args.model,
            task_id=args.task,
            stage=args.stage,
            details=flags.merged_over(card),
            per_case_path=args.per_case,
            replace=args.replace,
            date=args.date,
        )
    except LeaderboardError as error:
        return _error(str(error))
    record = submission.record
    console = Console(highlight=False, soft_wrap=True)
    inferred = f" (inferred: {', '.join(submission.inferred)})" if submission.inferred else ""
    console.print(
        f"submitted {record.model_id} on {record.task_id}{inferred}: "
        f"{record.eva_metric_key} = {record.mean:.4f} ± {record.stdev:.4f} "
        f"over {len(record.values or ())} run(s)",
        markup=False,
    )
    console.print(f"  wrote {submission.write.path}", markup=False)
    if submission.write.replaced is not None:
        console.print(f"  previous entry kept as {submission.write.replaced}", markup=False)
    console.print(
        f"  run `coralbay leaderboard build --root {root}` to update the tables", markup=False
    )
    return 0


_RUN_ONLY_OPTIONS = (
    "task",
    "stage",
    "model_card",
    "display_name",
    "parameters",
    "embedding_dim",
    "pretraining_datasets",
    "weights_source",
    "weights_sha256",
    "per_case",
    "date",
)
"""Options of `submit` that describe an eva run, not a robustness record."""


def _submit_robustness(args: argparse.Namespace, root: pathlib.Path) -> int:
    from rich.console import Console

    from eva_coralbay.leaderboard import LeaderboardError, robustness_board

    given = [f"--{name.replace('_', '-')}" for name in _RUN_ONLY_OPTIONS if getattr(args, name)]
    if given:
        return _error(f"{', '.join(given)}: options of an eva run, not of --robustness")
    try:
        written = robustness_board.submit(
            args.robustness, root, model_id=args.model, replace=args.replace
        )
    except LeaderboardError as error:
        return _error(str(error))
    console = Console(highlight=False, soft_wrap=True)
    record = written.submission
    console.print(
        f"submitted the robustness record of {record.model_id} ({record.registry_name}): "
        f"{len(record.perturbations)} perturbations over {record.n_scans} scan(s)",
        markup=False,
    )
    console.print(f"  wrote {written.path}", markup=False)
    if written.replaced is not None:
        console.print(f"  previous record kept as {written.replaced}", markup=False)
    console.print(
        f"  run `coralbay leaderboard build --root {root}` to update the tables", markup=False
    )
    return 0


def _run_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from eva_coralbay.leaderboard import LeaderboardError
    from eva_coralbay.leaderboard.build import build

    root = _root(args)
    try:
        result = build(root, top=args.top)
    except LeaderboardError as error:
        return _error(str(error))
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"built {root}: {result.n_models} models, {result.n_tasks} tasks, "
        f"{result.n_entries} entries",
        markup=False,
    )
    for path in result.paths:
        if path.is_dir():
            path_text = (
                f"{path}/ ({result.site_files} files, {result.site_written} rewritten; "
                "`coralbay leaderboard serve` shows it)"
            )
        else:
            path_text = str(path)
        console.print(f"  {path_text}", markup=False)
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from eva_coralbay.leaderboard.validate import validate

    root = _root(args)
    problems = validate(root)
    if problems:
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        for number, problem in enumerate(problems, start=1):
            console.print(f"{number}. {problem}", markup=False, style="red")
        console.print(f"{root}: {len(problems)} problem(s)", markup=False, style="bold red")
        return 1
    Console(highlight=False, soft_wrap=True).print(f"{root}: valid", markup=False, style="green")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from eva_coralbay.leaderboard import LeaderboardError, serve

    root = _root(args)
    try:
        server = serve.make_server(serve.site_folder(root), args.port)
    except LeaderboardError as error:
        return _error(str(error))
    print(f"serving {root / 'site'} at {serve.url(server)} (Ctrl-C stops)", flush=True)
    # Ctrl-C is how a quick look ends: no traceback, exit status 0.
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0
