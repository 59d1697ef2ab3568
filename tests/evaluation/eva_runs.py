"""Running the shipped configs: eva's CLI in a subprocess, and in-process instantiation."""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

import jsonargparse
import lightning.pytorch as pl
import yaml

from tests import hang_guard
from tests.conftest import REPOSITORY_ROOT

CONFIG_ENV_VARS = (
    "MODEL_NAME",
    "MODEL_EXTRA_KWARGS",
    "OUT_INDICES",
    "PROFILE",
    "DATA_ROOT",
    "DOWNLOAD_DATA",
    "ALLOW_INCOMPLETE",
    "N_RUNS",
    "MAX_STEPS",
    "VAL_CHECK_INTERVAL",
    "CHECKPOINT_TYPE",
    "LOG_EVERY_N_STEPS",
    "TQDM_REFRESH_RATE",
    "SAVE_LAST",
    "MONITOR_METRIC",
    "MONITOR_METRIC_MODE",
    "OUTPUT_ROOT",
    "EMBEDDINGS_ROOT",
    "IN_FEATURES",
    "CHANNEL_PROJECTION_DIMS",
    "NUM_CLASSES",
    "CLASS_LABELS",
    "TASK_ID",
    "FOLD",
    "ROI_SIZE",
    "SW_BATCH_SIZE",
    "SW_OVERLAP",
    "LR_VALUE",
    "WEIGHT_DECAY",
    "LR_VALUE_END",
    "SAMPLE_BATCH_SIZE",
    "SAMPLE_CLASS_RATIOS",
    "BATCH_SIZE",
    "PREDICT_BATCH_SIZE",
    "N_DATA_WORKERS",
    "PERSISTENT_WORKERS",
    "ORGAN_SOURCE",
    "ORGAN_CLASSES",
    "CLASSES",
    "PATCH_SIZE",
    "MIN_VOXELS",
)
"""Every variable the configs read: cleared from the environment so the defaults show."""

SMALL_MODEL = {
    "MODEL_NAME": "radiology/coralbay_random",
    "MODEL_EXTRA_KWARGS": "{feature_size: 12}",
}
"""An untrained CoralBay with F = 12: decoder IN_FEATURES 12, embedding 24 * 12 = 288 dims."""

SMALL_SEGMENTATION = {
    **SMALL_MODEL,
    "IN_FEATURES": "12",
    # A 4 mm grid puts a whole fixture volume inside one 64^3 window (64^3 is the smallest ROI
    # whose deepest Swin stage still has more than one voxel, which instance norm needs).
    "PROFILE": "{spacing: [4, 4, 4]}",
    "ROI_SIZE": "[64, 64, 64]",
    "SW_OVERLAP": "0",
    "SW_BATCH_SIZE": "1",
    "ALLOW_INCOMPLETE": "true",
    "N_RUNS": "1",
    "MAX_STEPS": "1",
    "VAL_CHECK_INTERVAL": "1",
    "BATCH_SIZE": "1",
    "SAMPLE_BATCH_SIZE": "1",
    "N_DATA_WORKERS": "0",
    "PERSISTENT_WORKERS": "false",
    "TQDM_REFRESH_RATE": "0",
    "LOG_EVERY_N_STEPS": "1",
}

SMALL_CLASSIFICATION = {
    **SMALL_MODEL,
    "IN_FEATURES": "288",
    "PROFILE": "{spacing: [4, 4, 4]}",
    "ALLOW_INCOMPLETE": "true",
    "N_RUNS": "1",
    "MAX_STEPS": "4",
    "N_DATA_WORKERS": "0",
    "PREDICT_BATCH_SIZE": "4",
}


def clean_environment(overrides: Mapping[str, str], cache: pathlib.Path) -> dict[str, str]:
    """The process environment without the configs' variables, plus `overrides`."""
    env = {key: value for key, value in os.environ.items() if key not in CONFIG_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["CORALBAY_CACHE"] = str(cache)
    env.update(overrides)
    return env


def eva_executable() -> str:
    """eva's console script beside this interpreter."""
    return str(pathlib.Path(sys.executable).with_name("eva"))


def run_eva(
    subcommand: str, config: pathlib.Path, env: Mapping[str, str], log: pathlib.Path
) -> pathlib.Path:
    """Runs `eva <subcommand> --config <config>`; returns the session folder it wrote.

    Raises:
        AssertionError: When eva fails (with the end of its output).
    """
    completed = hang_guard.run_watched(
        [eva_executable(), subcommand, "--config", str(config)],
        env=env,
        cwd=REPOSITORY_ROOT,
        log=log,
    )
    output = log.read_text(errors="replace")
    assert completed.returncode == 0, output[-6000:]
    sessions = sorted(pathlib.Path(env["OUTPUT_ROOT"]).glob("*/results.json"))
    assert len(sessions) == 1, (sessions, output[-3000:])
    return sessions[0].parent


def instantiate(config: pathlib.Path) -> tuple[Any, Any]:
    """The model and data module of a config, built in-process as eva's CLI builds them.

    The environment variables are read from `os.environ` (set them with monkeypatch).
    """
    parser = jsonargparse.ArgumentParser(parser_mode="omegaconf")
    parser.add_argument("--trainer", type=dict)
    parser.add_argument("--model", type=pl.LightningModule)
    parser.add_argument("--data", type=pl.LightningDataModule)
    parsed = parser.parse_path(str(config))
    # The trainer is left out: its callbacks and logger are covered by the end-to-end runs.
    parsed.trainer = None
    built = parser.instantiate_classes(parsed)
    return built["model"], built["data"]


def print_config(subcommand: str, config: pathlib.Path) -> Any:
    """The config as `eva <subcommand> --config <config> --print_config` prints it.

    eva's CLI class through jsonargparse with eva's settings, without `eva.core.cli.setup`
    (which would reconfigure the test process's logger and warnings).
    """
    from eva.core import interface

    stdout = io.StringIO()
    code: Any = 0
    try:
        with contextlib.redirect_stdout(stdout):
            jsonargparse.auto_cli(
                interface.Interface,
                parser_mode="omegaconf",
                fail_untyped=False,
                args=[subcommand, "--config", str(config), "--print_config"],
            )
    except SystemExit as exit_:
        code = exit_.code
    assert code in (0, None), stdout.getvalue()[-3000:]
    return yaml.safe_load(stdout.getvalue())


def load_yaml(path: pathlib.Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text())
