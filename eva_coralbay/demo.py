"""The main job in one command: data, pretraining, eva evaluation and the leaderboard.

`coralbay demo` runs, as a new user would by hand, every command the README documents:

1. writes a labelled CT benchmark (by default synthetic torso phantoms in the Decathlon layout;
   with `--data`, a real dataset is used as it is),
2. pretrains a CoralBay encoder with DINO on unlabeled scans and exports it,
3. evaluates it and `radiology/coralbay_random` with `eva fit` (frozen-encoder segmentation)
   and `eva predict_fit` (organ-patch linear probe),
4. submits the four results to a leaderboard folder and builds it. The benchmark's tasks are
   not built-in ones: the demo declares them in that folder's `tasks.yaml`, as anyone boarding
   their own data does (docs/leaderboard.md).

Each step is a subprocess whose command and output go to a log file; the console shows the
step, its elapsed time and its latest output line. There is no demo-only code path: the steps
are the shipped configs and commands with environment variables, as `docs/evaluation.md`
describes, and the presets only choose their sizes.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from eva_coralbay import _io

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent

PHANTOM_SEGMENTATION_TASK = "demo_phantom_segmentation"
PHANTOM_ORGANS_TASK = "demo_phantom_organs"
PRETRAINING_COLLECTION = "demo_phantom_pretraining"
"""The image collection the demo encoder is pretrained on: phantoms of other seeds than the
benchmark's, so the evaluation is not contaminated."""

DECATHLON_SEGMENTATION_CONFIG = "radiology/online/segmentation/decathlon_format.yaml"
DECATHLON_PROBE_CONFIG = "radiology/offline/classification/decathlon_format_organs.yaml"
PROJECT_URL = "https://github.com/kaiko-ai/eva-coralbay"


@dataclasses.dataclass(frozen=True)
class PhantomSet:
    """The size of the synthetic benchmark: how many phantoms, and how big each one is."""

    train: int
    val: int
    unlabeled: int
    """Phantoms of other seeds, for pretraining."""
    shape: tuple[int, int, int]
    """Voxels (x, y, z) at `spacing`; the model resamples them to its own 1.5 mm grid."""
    spacing: float = 3.0

    @property
    def folder_name(self) -> str:
        """The benchmark's folder: one per size, so that presets never mix their cases."""
        shape = "x".join(map(str, self.shape))
        return f"phantoms_{self.train}+{self.val}_{shape}"


@dataclasses.dataclass(frozen=True)
class Preset:
    """How big each step is."""

    name: str
    pretrain_config: str
    """A config under configs/pretrain/."""
    pretrain_steps: int | None
    """None: the config's own."""
    feature_size: int
    """F of the encoders evaluated (the pretrained one's, and coralbay_random's)."""
    segmentation_env: Mapping[str, str]
    """Environment overrides of the segmentation config (see docs/evaluation.md)."""
    probe_env: Mapping[str, str]
    """Environment overrides of the probe config."""
    phantoms: PhantomSet
    """The synthetic benchmark written when no --data is given."""
    train_cases: str = "all"
    """`coralbay evaluate --train-cases`: the label-efficiency track's segmentation runs."""
    robustness: str | None = None
    """`coralbay robustness --perturbations` for each model, or None to leave the track out."""
    max_parallel: int = 1
    """`coralbay evaluate --max-parallel`: a model's runs side by side, sharing the cores."""


_CPU_RUNS = {"N_RUNS": "1", "N_DATA_WORKERS": "0"}

TINY = Preset(
    name="tiny",
    pretrain_config="demo.yaml",
    pretrain_steps=None,
    feature_size=12,
    segmentation_env={
        **_CPU_RUNS,
        "PERSISTENT_WORKERS": "false",  # the probe config has no such setting
        "ROI_SIZE": "[64, 64, 64]",
        "SW_OVERLAP": "0",
        "SW_BATCH_SIZE": "4",
        "MAX_STEPS": "20",
        # No validation while fitting: eva validates the last weights once at the end (Lightning
        # warns that there is no last checkpoint file and uses the weights in memory), instead
        # of validating twice, once more to pick a best of one checkpoint.
        "VAL_CHECK_INTERVAL": "1000000",
        "CHECKPOINT_TYPE": "last",
        # Two 64^3 crops per step, from one phantom.
        "BATCH_SIZE": "1",
        "SAMPLE_BATCH_SIZE": "2",
        "LOG_EVERY_N_STEPS": "5",
    },
    probe_env={
        **_CPU_RUNS,
        # One step per epoch (the config's batch of 256 holds every patch), validated each.
        "MAX_STEPS": "100",
        "MIN_VOXELS": "50",
        "PREDICT_BATCH_SIZE": "8",
    },
    # Child-size torsos: 128 x 112 x 96 voxels on CoralBay's 1.5 mm grid.
    phantoms=PhantomSet(train=8, val=4, unlabeled=8, shape=(64, 56, 48)),
    # The smallest version of each side track: one and all labelled cases, one window shift.
    train_cases="1,all",
    robustness="window_soft_tissue",
    max_parallel=2,
)
"""Minutes on 2 CPU cores: a small encoder, short runs, one run per task."""

SMOKE = Preset(
    name="smoke",
    pretrain_config="demo.yaml",
    pretrain_steps=2,
    feature_size=12,
    segmentation_env={**TINY.segmentation_env, "MAX_STEPS": "1"},
    probe_env={**TINY.probe_env, "MAX_STEPS": "4"},
    # Three labelled phantoms of half the width and depth (64 x 64 x 96 voxels at 1.5 mm: two
    # sliding windows instead of eight), two for pretraining.
    phantoms=PhantomSet(train=2, val=1, unlabeled=2, shape=(32, 32, 48)),
    train_cases=TINY.train_cases,
    robustness=TINY.robustness,
    max_parallel=TINY.max_parallel,
)
"""The tiny preset cut to a few steps per stage on fewer, smaller phantoms: checks that the
whole chain runs (the suite's reduced main job), says nothing about quality."""

FULL = Preset(
    name="full",
    pretrain_config="coralbay_f48.yaml",
    pretrain_steps=None,
    feature_size=48,
    segmentation_env={},
    probe_env={},
    phantoms=TINY.phantoms,
)
"""The real thing: paper-scale pretraining and eva's radiology leaderboard protocol."""

PRESETS = {preset.name: preset for preset in (SMOKE, TINY, FULL)}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The labelled benchmark the demo evaluates on."""

    root: pathlib.Path
    segmentation_config: str
    """Under configs/radiology/online/segmentation/."""
    probe_config: str
    """Under configs/radiology/offline/classification/."""
    segmentation_task: str
    organs_task: str
    env: Mapping[str, str]
    """Environment of both configs."""
    segmentation_env: Mapping[str, str]
    """Environment of the segmentation config only (its classes include the background)."""
    probe_env: Mapping[str, str]
    """Environment of the probe config only (its classes are the organs)."""
    pretraining_scans: Sequence[pathlib.Path]
    pretraining_collections: Sequence[str]
    tasks: Sequence[Mapping[str, object]] = ()
    """The tasks the demo declares in its leaderboard's tasks.yaml (Decathlon-layout data,
    which no built-in task describes); () for a built-in benchmark."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One command of the demo."""

    title: str
    command: Sequence[str]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    log: str = ""
    before: Callable[[], None] | None = None
    """Run just before the command (writes a file the command reads)."""


def configs_root() -> pathlib.Path:
    """The shipped configs: the checkout's `configs/`, else the copy inside the wheel."""
    for candidate in (PACKAGE_ROOT.parent / "configs", PACKAGE_ROOT / "configs"):
        if (candidate / "radiology").is_dir():
            return candidate
    raise FileNotFoundError(
        f"the eva configs are neither in {PACKAGE_ROOT.parent / 'configs'} nor in "
        f"{PACKAGE_ROOT / 'configs'}: reinstall eva-coralbay"
    )


def write_phantom_benchmark(root: pathlib.Path, size: PhantomSet = TINY.phantoms) -> Dataset:
    """Writes the embedded default: phantoms in the Decathlon layout, plus unlabeled scans.

    By default twelve labelled child-size torso phantoms (8 train, 4 validation) and eight
    unlabeled ones of other seeds for pretraining, 3 mm voxels, written once (an existing,
    complete dataset is reused as it is).
    """
    from eva_coralbay.data.synthetic import layouts, phantoms

    shape, spacing = size.shape, size.spacing
    benchmark = root / size.folder_name
    if not (benchmark / "dataset.json").exists():
        layouts.write_decathlon_format(
            benchmark,
            train=range(1, size.train + 1),
            val=range(size.train + 1, size.train + size.val + 1),
            shape=shape,
            spacing=spacing,
            name="DemoPhantoms",
        )
    unlabeled = root / f"pretraining_{'x'.join(map(str, shape))}"
    scans = []
    for seed in range(100, 100 + size.unlabeled):
        path = unlabeled / f"phantom_{seed:03d}.nii.gz"
        if not path.exists():
            phantom = phantoms.make_phantom(seed, shape=shape, spacing=spacing)
            with _io.atomic_path(path, suffix=".nii.gz") as temporary:
                layouts.save_nifti(temporary, phantom.image, phantom.affine)
        scans.append(path)
    organs = list(layouts.PHANTOM_CLASSES[1:])
    return Dataset(
        root=benchmark,
        segmentation_config="decathlon_format.yaml",
        probe_config="decathlon_format_organs.yaml",
        segmentation_task=PHANTOM_SEGMENTATION_TASK,
        organs_task=PHANTOM_ORGANS_TASK,
        env={"ALLOW_INCOMPLETE": "true"},
        segmentation_env={"NUM_CLASSES": str(len(layouts.PHANTOM_CLASSES))},
        probe_env=_organ_probe_env(organs),
        pretraining_scans=scans,
        pretraining_collections=[PRETRAINING_COLLECTION],
        tasks=decathlon_tasks(
            PHANTOM_SEGMENTATION_TASK,
            PHANTOM_ORGANS_TASK,
            layouts.PHANTOM_CLASSES,
            names=("Phantom organs", "Phantom organ patches"),
            source="Synthetic torso phantoms generated by `coralbay demo`",
            image_source="demo_phantom",
            synthetic=True,
        ),
    )


def decathlon_tasks(
    segmentation_task: str,
    organs_task: str,
    classes: Sequence[str],
    *,
    names: tuple[str, str],
    source: str,
    image_source: str,
    synthetic: bool,
) -> list[dict[str, object]]:
    """tasks.yaml entries of a Decathlon-layout dataset: its segmentation and its organ probe.

    Args:
        segmentation_task: The segmentation task's id (the config's TASK_ID).
        organs_task: The organ-patch probe's id.
        classes: The segmentation labels by id, background first.
        names: The short names of the segmentation task and of the probe.
        source: Where the data comes from (the tasks' citation).
        image_source: The image collection of the scans (for contamination).
        synthetic: Whether the data is generated.
    """
    suffix = " (synthetic)" if synthetic else ""
    common = {
        "image_sources": [image_source],
        "url": PROJECT_URL,
        "adapter": "DecathlonFormat",
        "synthetic": synthetic,
    }
    return [
        {
            "id": segmentation_task,
            "name": f"{names[0]}{suffix}",
            "type": "segmentation",
            "classes": list(classes),
            "citation": source,
            "config": DECATHLON_SEGMENTATION_CONFIG,
            **common,
        },
        {
            "id": organs_task,
            "name": f"{names[1]}{suffix}",
            "type": "classification",
            "classes": list(classes[1:]),
            "citation": f"Organ patches cut from: {source}",
            "config": DECATHLON_PROBE_CONFIG,
            **common,
        },
    ]


def real_benchmark(root: pathlib.Path, dataset_name: str) -> Dataset:
    """A real benchmark in its native layout (any adapter), pretrained on its training scans.

    Raises:
        ValueError: For an unknown dataset name.
        FileNotFoundError: When `root` does not exist.
    """
    if not root.exists():  # before the adapters' import, which takes seconds
        raise FileNotFoundError(f"--data {root}: no such folder")
    from eva_coralbay.data import adapters

    adapter = adapters.adapter_by_name(dataset_name)
    if not issubclass(adapter, adapters.SegmentationAdapter):
        raise ValueError(f"{dataset_name}: the demo needs a segmentation dataset")
    task_id = adapter.task_id
    train = adapter(root=str(root), split="train", profile=None)
    train.configure()
    scans = [pathlib.Path(case.image) for case in train.cases]
    organs = list(train.classes[1:])
    if adapter is adapters.DecathlonFormat:
        return Dataset(
            root=root,
            segmentation_config="decathlon_format.yaml",
            probe_config="decathlon_format_organs.yaml",
            segmentation_task=task_id,
            organs_task=f"{task_id}_organs",
            env={},
            segmentation_env={"NUM_CLASSES": str(len(train.classes))},
            probe_env=_organ_probe_env(organs),
            pretraining_scans=scans,
            pretraining_collections=[task_id],
            tasks=decathlon_tasks(
                task_id,
                f"{task_id}_organs",
                train.classes,
                names=(root.name, f"{root.name} organ patches"),
                source=f"Decathlon-layout data in {root}",
                image_source=task_id,
                synthetic=False,
            ),
        )
    return Dataset(
        root=root,
        segmentation_config=f"{task_id}.yaml",
        probe_config="organ_patches.yaml",
        segmentation_task=task_id,
        organs_task=f"{task_id}_organs",
        env={},
        segmentation_env={},
        probe_env={"ORGAN_SOURCE": adapter.__name__, **_organ_probe_env(organs)},
        pretraining_scans=scans,
        pretraining_collections=[task_id],
    )


def _organ_probe_env(organs: Sequence[str]) -> dict[str, str]:
    """The probe's classes: every foreground label of the segmentation task."""
    return {"ORGAN_CLASSES": "[" + ", ".join(organs) + "]", "NUM_CLASSES": str(len(organs))}


def plan(
    output: pathlib.Path, dataset: Dataset, preset: Preset, pretrain_steps: int | None
) -> list[Step]:
    """The demo's commands, in order."""
    configs = configs_root()
    python = sys.executable
    coralbay = [python, "-m", "eva_coralbay.cli"]
    pretrain_dir = output / "pretraining"
    export_dir = output / "coralbay-demo"
    leaderboard = output / "leaderboard"
    steps = pretrain_steps if pretrain_steps is not None else preset.pretrain_steps
    pretrain = [
        *coralbay,
        "pretrain",
        "--config",
        str(configs / "pretrain" / preset.pretrain_config),
        "--output",
        str(pretrain_dir),
        "--data",
        *map(str, dataset.pretraining_scans),
    ]
    if steps is not None:
        pretrain += ["--max-steps", str(steps)]
    result: list[Step] = [
        Step("pretrain a CoralBay encoder with DINO", pretrain, log="pretrain.log"),
        Step(
            "export the teacher encoder",
            [
                *coralbay,
                "export",
                str(pretrain_dir / "checkpoints" / "last.ckpt"),
                "--output",
                str(export_dir),
                "--overwrite",
            ],
            log="export.log",
        ),
    ]
    models = {
        "coralbay-demo": [
            "--model",
            "radiology/coralbay",
            "--checkpoint",
            str(export_dir),  # evaluate reads F from its config.json
        ],
        "coralbay-random": [
            "--model",
            "radiology/coralbay_random",
            "--model-kwargs",
            json.dumps({"feature_size": preset.feature_size}),
        ],
    }
    tasks = [dataset.segmentation_task]
    runnable = _catalogue_tasks() | {str(entry["id"]) for entry in dataset.tasks}
    if dataset.organs_task in runnable:
        tasks.append(dataset.organs_task)
    settings = [
        *(f"{name}={value}" for name, value in dataset.env.items()),
        f"{dataset.segmentation_task}:TQDM_REFRESH_RATE=5",  # the probe config shows no bar
        *(
            f"{dataset.segmentation_task}:{name}={value}"
            for name, value in {**preset.segmentation_env, **dataset.segmentation_env}.items()
        ),
    ]
    if dataset.organs_task in tasks:
        settings += [
            f"{dataset.organs_task}:{name}={value}"
            for name, value in {**preset.probe_env, **dataset.probe_env}.items()
        ]
    if preset.robustness is not None:
        # Before the evaluations: each `evaluate --submit` rebuilds the board with these records.
        result += [
            _robustness_step(output, dataset, model_id, arguments, preset.robustness, leaderboard)
            for model_id, arguments in models.items()
        ]
    cards = output / "model_cards"
    for model_id, model_arguments in models.items():
        card = cards / f"{model_id}.json"
        result.append(
            Step(
                f"coralbay evaluate {model_id} on {', '.join(tasks)} and submit",
                [
                    *coralbay,
                    "evaluate",
                    *model_arguments,
                    "--model-id",
                    model_id,
                    "--tasks",
                    ",".join(tasks),
                    *(arg for task in tasks for arg in ("--data", f"{task}={dataset.root}")),
                    "--output",
                    str(output / "runs"),
                    *(arg for setting in settings for arg in ("--set", setting)),
                    "--submit",
                    "--leaderboard-root",
                    str(leaderboard),
                    "--model-card",
                    str(card),
                    "--max-parallel",
                    str(preset.max_parallel),
                    *(["--train-cases", preset.train_cases] if preset.train_cases != "all" else []),
                ],
                # The standardised cases are cached inside the demo's folder (read by the
                # adapters, not by the configs).
                env={"CORALBAY_CACHE": str(output / "cache")},
                log=f"evaluate-{model_id}.log",
                before=functools.partial(
                    _prepare_evaluation,
                    card,
                    _model_card(model_id, export_dir, dataset, preset),
                    leaderboard,
                    dataset.tasks,
                ),
            )
        )
    return result


def _robustness_step(
    output: pathlib.Path,
    dataset: Dataset,
    model_id: str,
    model_arguments: Sequence[str],
    perturbations: str,
    leaderboard: pathlib.Path,
) -> Step:
    """`coralbay robustness` of one model on the segmentation task's validation scans, boarded."""
    task = dataset.segmentation_task
    if task not in _catalogue_tasks():  # the demo's own tasks: Decathlon-layout data
        task = "decathlon_format"
    return Step(
        f"coralbay robustness {model_id}: {perturbations}",
        [
            sys.executable,
            "-m",
            "eva_coralbay.cli",
            "robustness",
            *model_arguments,
            "--task",
            task,
            "--data-root",
            str(dataset.root),
            "--perturbations",
            perturbations,
            "--roi-size",
            "64",
            "--overlap",
            "0",
            "--device",
            "cpu",
            "--output",
            str(output / "robustness" / f"{model_id}.json"),
            "--submit",
            "--leaderboard-root",
            str(leaderboard),
            "--model-id",
            model_id,
        ],
        log=f"robustness-{model_id}.log",
    )


def _catalogue_tasks() -> set[str]:
    from eva_coralbay import tasks

    return {record.id for record in tasks.BENCHMARKS if record.config is not None}


def _model_card(
    model_id: str, export_dir: pathlib.Path, dataset: Dataset, preset: Preset
) -> dict[str, object]:
    """What the leaderboard is told about each demo model (`coralbay leaderboard` model card)."""
    embedding = {"embedding_dim": 24 * preset.feature_size}
    if model_id == "coralbay-random":
        # It saw no images: uncontaminated everywhere.
        return {
            "display_name": f"CoralBay random init (F={preset.feature_size})",
            "pretraining_datasets": [],
            **embedding,
        }
    return {
        "display_name": f"CoralBay demo (F={preset.feature_size}, DINO)",
        "pretraining_datasets": list(dataset.pretraining_collections),
        "weights_source": str(export_dir / "model.safetensors"),
        **embedding,
    }


def _prepare_evaluation(
    card_path: pathlib.Path,
    card: Mapping[str, object],
    leaderboard: pathlib.Path,
    tasks: Sequence[Mapping[str, object]],
) -> None:
    """Writes what an evaluation step reads: the model card, and the leaderboard's tasks.yaml.

    `coralbay evaluate` finds the demo's own tasks (their configs, and how the leaderboard
    scores them) in the tasks.yaml of the leaderboard it submits to.
    """
    _io.atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
    if tasks:
        from eva_coralbay.leaderboard import task_file

        _io.atomic_write_text(leaderboard / task_file.FILENAME, task_file.dump(tasks))


def run_steps(
    steps: Sequence[Step],
    logs: pathlib.Path,
    *,
    echo: Callable[[str], None] = print,
) -> None:
    """Runs the steps in order, streaming each one's output to its log file.

    Raises:
        RuntimeError: When a step fails; the message holds its command, log and last lines.
    """
    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for number, step in enumerate(steps, start=1):
        log_path = logs / (step.log or f"step-{number:02d}.log")
        if step.before is not None:
            step.before()
        header = f"[{number}/{len(steps)}] {step.title}"
        # Unbuffered, so that progress reaches the console while the step runs.
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env}
        tail: collections.deque[str] = collections.deque(maxlen=30)
        step_started = time.monotonic()
        with (
            log_path.open("a", encoding="utf-8") as log,
            console.status(header) as status,
        ):
            log.write(f"\n$ {_shell_line(step)}\n")
            log.flush()
            process = subprocess.Popen(
                step.command,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
            assert process.stdout is not None
            try:
                for raw_line in process.stdout:
                    log.write(raw_line)
                    log.flush()  # so that `tail -f` on the log follows the step live
                    # Progress bars redraw with carriage returns: show their latest state.
                    line = raw_line.rstrip("\n").split("\r")[-1].strip()
                    if line:
                        tail.append(line)
                        elapsed = time.monotonic() - step_started
                        status.update(f"{header}  [dim]{elapsed:4.0f}s  {line[:90]}[/dim]")
                code = process.wait()
            finally:
                # Interrupted (Ctrl-C, a signal): the step must not outlive the demo.
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
        elapsed = time.monotonic() - step_started
        if code != 0:
            last = "\n".join(f"    {line}" for line in tail)
            raise RuntimeError(
                f"step {number} ({step.title}) failed with exit code {code} after {elapsed:.0f} s"
                f"\n  command: {_shell_line(step)}\n  log: {log_path}\n  last output:\n{last}"
            )
        echo(f"{header}  done in {elapsed:.0f} s  (log: {log_path})")
    echo(f"all {len(steps)} steps done in {time.monotonic() - started:.0f} s")


def _shell_line(step: Step) -> str:
    environment = " ".join(f"{key}={shlex.quote(value)}" for key, value in step.env.items())
    command = " ".join(shlex.quote(part) for part in step.command)
    return f"{environment} {command}".strip()


def summary(output: pathlib.Path) -> str:
    """Where the results are, and the overall table of the built leaderboard."""
    leaderboard = output / "leaderboard"
    lines = [
        "",
        "Results",
        f"  leaderboard (markdown): {leaderboard / 'README.md'}",
        f"  heatmap:                {leaderboard / 'heatmap.png'}  (and heatmap.svg)",
        f"  website:                {leaderboard / 'site' / 'index.html'}  "
        "(coralbay leaderboard serve)",
        f"  leaderboard table:      {leaderboard / 'leaderboard.parquet'}",
        f"  side-track views:       {leaderboard / 'site' / 'label-efficiency.html'}, "
        f"{leaderboard / 'site' / 'robustness.html'}",
        f"  robustness records:     {output / 'robustness'}",
        f"  submissions:            {leaderboard / 'submissions'}",
        f"  pretrained encoder:     {output / 'coralbay-demo'}  (model.safetensors + config.json)",
        f"  pretraining checkpoints:{output / 'pretraining' / 'checkpoints'}",
        f"  eva runs:               {output / 'runs'}  (results.json, per_case_scores.parquet)",
        f"  logs:                   {output / 'logs'}",
    ]
    readme = leaderboard / "README.md"
    if readme.exists():
        table = _first_table(readme.read_text(encoding="utf-8"))
        if table:
            lines += ["", "Overall table (from the leaderboard's README.md):", *table]
    return "\n".join(lines)


def _first_table(markdown: str) -> list[str]:
    rows: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows
