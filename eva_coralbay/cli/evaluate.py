"""`coralbay evaluate`: the leaderboard protocol for one model over many tasks, local or SLURM."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from eva_coralbay.cli import _arguments as arguments

ORDER = 35


def register(subparsers: Any) -> None:
    """Adds the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="run the shipped eva configs of many tasks for one model (local or SLURM)",
        description=(
            "Plans one job per task (eva fit for segmentation, eva predict_fit for probes) on "
            "the shipped configs, validates every task's data first, skips tasks whose results "
            "are complete, runs the rest locally or on SLURM (submitit), and optionally submits "
            "them to a leaderboard. Each task writes to OUTPUT/<model id>/<task id>/."
        ),
    )
    parser.add_argument("--model", default="radiology/coralbay", help="backbone registry name")
    parser.add_argument("--checkpoint", help="weights instead of the model's own (path or HF id)")
    parser.add_argument(
        "--model-kwargs",
        type=arguments.json_object,
        default={},
        help="JSON object of model keyword arguments",
    )
    parser.add_argument(
        "--model-id", default="", help="folder and leaderboard id (default: derived)"
    )
    parser.add_argument(
        "--tasks",
        default="all",
        help="all | segmentation | classification | comma-separated task ids",
    )
    parser.add_argument(
        "--data-root", type=pathlib.Path, help="ROOT/<task id>/ in each task's native layout"
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="one task's data folder (over --data-root); repeatable",
    )
    parser.add_argument("--output", type=pathlib.Path, help="the sweep folder")
    parser.add_argument("--runs", type=int, help="N_RUNS of every task (default: the config's)")
    parser.add_argument(
        "--train-cases",
        default="all",
        help="label-efficiency track: comma-separated training-case counts, e.g. 1,5,all; each "
        "count is the task variant <task>@<count> (segmentation tasks)",
    )
    parser.add_argument(
        "--train-samples-per-class",
        default="all",
        help="label-efficiency track of the probes: comma-separated counts of training samples "
        "per class, e.g. 1,5,all; each count is the task variant <task>@<count> "
        "(classification tasks)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[TASK:]NAME=VALUE",
        help="a config environment variable, for every task or one task; repeatable",
    )
    parser.add_argument("--launcher", choices=("local", "slurm"), default="local")
    parser.add_argument("--max-parallel", type=int, default=1, help="local jobs at a time")
    slurm = parser.add_argument_group("SLURM (with --launcher slurm)")
    slurm.add_argument("--partition")
    slurm.add_argument("--gpus-per-task", type=int)
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem", help="memory per job, e.g. 64G")
    slurm.add_argument("--time", type=int, default=24 * 60, help="minutes per job (default 1440)")
    slurm.add_argument(
        "--slurm-option", action="append", default=[], metavar="KEY=VALUE", help="any sbatch option"
    )
    parser.add_argument("--submit", action="store_true", help="submit finished tasks and build")
    parser.add_argument(
        "--leaderboard-root",
        type=pathlib.Path,
        help="where --submit writes; its tasks.yaml adds tasks of your own to --tasks",
    )
    parser.add_argument(
        "--model-card",
        type=pathlib.Path,
        help="JSON model details for --submit (as `coralbay leaderboard submit --model-card`)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    parser.add_argument("--force", action="store_true", help="rerun complete and stale tasks")
    parser.add_argument("--no-wait", action="store_true", help="SLURM: submit and return")
    parser.add_argument(
        "--status", type=pathlib.Path, metavar="DIR", help="show the jobs of a sweep folder"
    )
    parser.set_defaults(run=run)


def _fail(message: str, code: int = 2) -> int:
    print(f"coralbay evaluate: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Runs the subcommand; returns the exit status."""
    if args.status is not None:
        return _show_status(args.status)
    from eva_coralbay.sweeps import plan as planning

    if args.output is None:
        return _fail("--output is required (or --status DIR)")
    try:
        jobs, model = _plan(args)
    except (planning.PlanError, ValueError) as error:
        return _fail(str(error))
    from eva_coralbay.sweeps import data_check, launch, records

    try:
        records.check_model_folder(
            args.output / jobs[0].model_id, model.to_dict(), args.force, record=not args.dry_run
        )
    except ValueError as error:
        return _fail(str(error))
    decisions = launch.decide(jobs, force=args.force)
    _print_plan(decisions, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    to_run = []
    for decision in decisions:
        if decision.action != "run":
            continue
        # Every task's data is checked before anything runs; a task with unusable data is
        # reported and fails alone, the others still run.
        problems = data_check.job_problems(decision.job)
        if problems:
            for problem in problems:
                print(f"coralbay evaluate: {problem}", file=sys.stderr)
            decision.action, decision.reason = "invalid", "; ".join(problems)
            records.JobRecord(
                decision.job.task_id,
                "failed",
                decision.job.fingerprint(),
                message="data not usable: " + "; ".join(problems),
            ).write(decision.job.folder)
        else:
            to_run.append(decision.job)
    if args.launcher == "slurm":
        return _run_slurm(args, to_run, decisions)
    with launch.Progress(to_run) as progress:
        launch.run_local(to_run, max_parallel=args.max_parallel, progress=progress)
    return _finish(args, decisions)


def _plan(args: argparse.Namespace) -> tuple[list[Any], Any]:
    import difflib

    from eva_coralbay import demo
    from eva_coralbay.leaderboard import LeaderboardError, Registry, paths
    from eva_coralbay.models import preprocessing
    from eva_coralbay.sweeps import plan as planning

    known = list(preprocessing.BY_REGISTRY_NAME)
    if args.model not in known:
        close = difflib.get_close_matches(args.model, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise planning.PlanError(
            f"--model {args.model!r} is not a 3D radiology backbone of eva's registry{hint} "
            f"Known: {', '.join(known)}"
        )
    model = planning.ModelSpec(args.model, args.checkpoint, args.model_kwargs, args.model_id)
    data = {}
    for item in args.data:
        task_id, separator, path = item.partition("=")
        if not separator or not task_id or not path:
            raise planning.PlanError(f"--data {item!r}: expected TASK=PATH")
        data[task_id] = pathlib.Path(path)
    # The leaderboard's tasks: the built-in ones plus those its tasks.yaml declares.
    try:
        registry = Registry.for_root(args.leaderboard_root or paths.default_root())
    except LeaderboardError as error:
        raise planning.PlanError(str(error)) from None
    selected = planning.select_tasks(args.tasks, registry)
    jobs = planning.plan(
        model,
        selected,
        output=args.output,
        configs_root=demo.configs_root(),
        data_root=args.data_root,
        data=data,
        runs=args.runs,
        assignments=args.set,
        train_cases=planning.parse_train_cases(args.train_cases),
        train_samples_per_class=planning.parse_train_cases(
            args.train_samples_per_class, "--train-samples-per-class"
        ),
        registry=registry,
    )
    return jobs, model


def _print_plan(decisions: list[Any], *, dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="plan" if dry_run else None)
    for column in ("task", "action", "eva", "config", "data", "why"):
        table.add_column(column, overflow="fold")
    if dry_run:
        table.add_column("environment", overflow="fold")
    for decision in decisions:
        job = decision.job
        row = [
            job.task_id,
            decision.action,
            job.eva_command,
            job.config.name,
            str(job.data),
            decision.reason,
        ]
        if dry_run:
            row.append(" ".join(f"{key}={value}" for key, value in sorted(job.env.items())))
        table.add_row(*map(Text, row))  # Text: values such as [a, b] are not rich markup
    Console(highlight=False, width=_width(200 if dry_run else 140)).print(table)


def _run_slurm(args: argparse.Namespace, to_run: list[Any], decisions: list[Any]) -> int:
    from eva_coralbay.sweeps import launch

    extra = {}
    for item in args.slurm_option:
        key, separator, value = item.partition("=")
        if not separator:
            return _fail(f"--slurm-option {item!r}: expected KEY=VALUE")
        extra[key] = value
    options = launch.SlurmOptions(
        partition=args.partition,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        time_minutes=args.time,
        extra=extra,
    )
    handles = launch.submit_slurm(to_run, options, args.output / "slurm")
    for job, handle in zip(to_run, handles, strict=True):
        print(f"submitted {job.task_id} as SLURM job {handle.job_id}")
    if args.no_wait:
        print(f"not waiting; `coralbay evaluate --status {args.output}` shows where they stand")
        return 0
    with launch.Progress(to_run) as progress:
        launch.wait_slurm(to_run, handles, progress=progress)
    return _finish(args, decisions)


def _finish(args: argparse.Namespace, decisions: list[Any]) -> int:
    from eva_coralbay.sweeps import records

    failed = False
    rows = []
    for decision in decisions:
        job = decision.job
        record = records.JobRecord.read(job.folder)
        if decision.action == "refuse":
            state, failed = "refused", True
        elif decision.action == "invalid":
            state, failed = "failed (data)", True
        elif record is None:
            state = decision.action
        else:
            state = record.state if decision.action == "run" else f"skipped ({record.state})"
            failed = failed or (decision.action == "run" and record.state != "done")
        rows.append((job, state, record, decision.reason))
    _print_summary(rows)
    for job, state, record, _ in rows:
        if record is not None and state == "failed" and job.log.is_file():
            # The end of a failed run's log says why, without opening the file.
            tail = job.log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print(f"--- {job.task_id}: last lines of {job.log}", file=sys.stderr)
            print("\n".join(f"    {line}" for line in tail), file=sys.stderr)
    if args.submit:
        done = [job for job, _, record, _ in rows if record is not None and record.state == "done"]
        ran = {decision.job.task_id for decision in decisions if decision.action == "run"}
        failed = _submit(args, done, ran) or failed
    return 1 if failed else 0


def _print_summary(rows: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="coralbay evaluate")
    for column in ("task", "state", "metric", "wall", "log / reason"):
        table.add_column(column, overflow="fold")
    for job, state, record, reason in rows:
        metric = (
            f"{record.metric_key} {record.metric:.4f}"
            if record is not None and record.metric is not None
            else ""
        )
        wall = f"{record.wall_seconds:.0f} s" if record and record.wall_seconds else ""
        detail = str(job.log) if state in ("done", "failed") else reason
        if record is not None and record.state == "failed":
            detail = record.message or detail
        table.add_row(*map(Text, (job.task_id, state, metric, wall, detail)))
    Console(highlight=False, width=_width(140)).print(table)


def _submit(args: argparse.Namespace, done: list[Any], ran: set[str]) -> bool:
    """Submits finished tasks and builds the leaderboard; returns whether anything failed.

    A task that was complete before this call is submitted only when the leaderboard has no
    entry for it yet, so that rerunning a sweep adds no duplicate history entries.
    """
    from eva_coralbay.leaderboard import LeaderboardError, paths
    from eva_coralbay.leaderboard.build import build
    from eva_coralbay.leaderboard.store import Store
    from eva_coralbay.leaderboard.submit import ModelDetails, submit_run
    from eva_coralbay.sweeps import plan as planning

    root = args.leaderboard_root or paths.default_root()
    model = planning.ModelSpec(args.model, args.checkpoint, args.model_kwargs)
    features = planning.feature_size(model)
    details = ModelDetails(
        embedding_dim=None if features is None else planning.EMBEDDING_WIDTH * features,
        weights_source=args.checkpoint,
    )
    if args.model_card is not None:
        try:
            # The card's fields win; what evaluate knows fills the gaps.
            details = ModelDetails.from_card(args.model_card).merged_over(details)
        except LeaderboardError as error:
            print(f"coralbay evaluate: --model-card: {error}", file=sys.stderr)
            return True
    store = Store(root)
    failed = False
    for job in done:
        # A label-efficiency variant (`btcv@5`) is submitted as such: the leaderboard shows it
        # in its own view, outside the main ranking.
        if job.task_id not in ran and store.entry_path(job.model_id, job.task_id).exists():
            continue
        try:
            submission = submit_run(
                job.output_root,
                root,
                model_id=job.model_id,
                task_id=job.task_id,
                details=details,
                replace=True,
            )
            print(f"submitted {job.model_id} / {job.task_id} -> {submission.write.path}")
        except LeaderboardError as error:
            failed = True
            print(f"coralbay evaluate: submit {job.task_id}: {error}", file=sys.stderr)
    try:
        result = build(root)
        print(f"built {root}: {result.n_models} models, {result.n_tasks} tasks")
    except LeaderboardError as error:
        failed = True
        print(f"coralbay evaluate: leaderboard build: {error}", file=sys.stderr)
    return failed


def _show_status(output: pathlib.Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from eva_coralbay.sweeps import launch

    if not output.is_dir():
        return _fail(f"--status {output}: no such folder")
    rows = launch.status_rows(output)
    if not rows:
        return _fail(f"--status {output}: no coralbay evaluate jobs there", 1)
    table = Table(title=str(output))
    for column in ("model", "task", "state", "metric", "wall", "log / message"):
        table.add_column(column, overflow="fold")
    for row in rows:
        metric = "" if row.get("metric") is None else f"{row['metric']:.4f}"
        wall = "" if not row.get("wall_seconds") else f"{row['wall_seconds']:.0f} s"
        table.add_row(
            row["model"],
            row["task"],
            row["state"],
            metric,
            wall,
            row.get("message") or row.get("log", ""),
        )
    Console(highlight=False, width=_width(140)).print(table)
    return 0


def _width(wide: int) -> int | None:
    """The console width: the terminal's, or `wide` when writing to a file or pipe (logs)."""
    return None if sys.stdout.isatty() else wide
