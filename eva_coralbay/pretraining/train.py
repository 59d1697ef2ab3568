"""Runs a pretraining job: trainer, loggers, checkpoints and resumption in an output folder."""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch import callbacks as pl_callbacks
from lightning.pytorch import loggers as pl_loggers

from eva_coralbay import _io
from eva_coralbay.pretraining.config import PretrainConfig
from eva_coralbay.pretraining.dataset import PretrainDataModule
from eva_coralbay.pretraining.module import DINOPretraining

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"
"""The checkpoint a rerun in the same output folder resumes from."""


def checkpoint_dir(output: str | os.PathLike[str]) -> pathlib.Path:
    """The folder of a run's checkpoints."""
    return pathlib.Path(output) / "checkpoints"


def resolve_resume(output: str | os.PathLike[str], resume: str | None, fresh: bool) -> str | None:
    """Picks the checkpoint to resume from.

    Args:
        output: The run's output folder.
        resume: An explicit checkpoint, or None to resume from the folder's `last.ckpt` if any.
        fresh: Start from scratch; refused when the folder already holds checkpoints.

    Raises:
        FileNotFoundError: When the explicit checkpoint does not exist.
        FileExistsError: When starting fresh would overwrite another run's checkpoints.
    """
    last = checkpoint_dir(output) / LAST_CHECKPOINT
    if resume is not None:
        if not pathlib.Path(resume).is_file():
            raise FileNotFoundError(f"checkpoint to resume from not found: {resume}")
        return resume
    if fresh:
        if last.exists():
            raise FileExistsError(
                f"{output} already holds a run ({last}); resume it or choose another output"
            )
        return None
    return str(last) if last.is_file() else None


def resolve_precision(precision: str, accelerator: str) -> str:
    """'auto' -> bf16 mixed precision on GPUs that support it, float32 otherwise."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in {"gpu", "cuda"} or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_trainer(config: PretrainConfig, extra_callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """The Lightning trainer of a pretraining run, logging to CSV and TensorBoard in the output."""
    trainer_config = config.trainer
    output = pathlib.Path(config.output)
    callbacks: list[L.Callback] = [
        pl_callbacks.ModelCheckpoint(
            dirpath=checkpoint_dir(output),
            filename="step={step}",
            auto_insert_metric_name=False,
            every_n_train_steps=trainer_config.checkpoint_every_n_steps,
            save_top_k=1,
            save_last=True,
        ),
        *extra_callbacks,
    ]
    if trainer_config.progress_bar == "rich":
        callbacks.append(pl_callbacks.RichProgressBar())
    elif trainer_config.progress_bar == "tqdm":
        callbacks.append(pl_callbacks.TQDMProgressBar())
    elif trainer_config.progress_bar != "none":
        raise ValueError(
            f"trainer.progress_bar must be 'rich', 'tqdm' or 'none', got "
            f"{trainer_config.progress_bar!r}"
        )
    loggers: list[pl_loggers.Logger] = [pl_loggers.CSVLogger(output, name="csv")]
    try:
        loggers.append(pl_loggers.TensorBoardLogger(output, name="tensorboard"))
    except ModuleNotFoundError:
        logger.info("tensorboard is not installed: logging to CSV only")
    return L.Trainer(
        accelerator=trainer_config.accelerator,
        devices=trainer_config.devices,
        num_nodes=trainer_config.num_nodes,
        strategy=trainer_config.strategy,
        precision=resolve_precision(trainer_config.precision, trainer_config.accelerator),  # type: ignore[arg-type]
        max_steps=trainer_config.max_steps,
        max_epochs=-1,
        gradient_clip_val=config.optim.clip_grad,
        sync_batchnorm=config.head.use_bn,
        gradient_clip_algorithm="norm",
        log_every_n_steps=trainer_config.log_every_n_steps,
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=trainer_config.progress_bar != "none",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def run_pretraining(
    config: PretrainConfig,
    *,
    resume: str | None = None,
    fresh: bool = False,
    extra_callbacks: Sequence[L.Callback] = (),
) -> pathlib.Path:
    """Pretrains a CoralBay encoder with DINO; resumes from the output's `last.ckpt` if present.

    Args:
        config: The run's settings.
        resume: A checkpoint to resume from instead of the output's `last.ckpt`.
        fresh: Refuse to resume (and to overwrite an existing run).
        extra_callbacks: More Lightning callbacks (for example to inspect the run).

    Returns:
        The final checkpoint (`<output>/checkpoints/last.ckpt`).
    """
    output = pathlib.Path(config.output)
    ckpt_path = resolve_resume(output, resume, fresh)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    trainer = build_trainer(config, extra_callbacks)
    if trainer.is_global_zero:
        _write_config(output, config)
        if ckpt_path is not None:
            logger.info("resuming from %s", ckpt_path)
    module = DINOPretraining(config.to_dict())
    datamodule = PretrainDataModule(config.data, config.crops)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    last = checkpoint_dir(output) / LAST_CHECKPOINT
    # The periodic checkpoint may predate the final step: save the end state explicitly.
    trainer.save_checkpoint(last)
    return last


def _write_config(output: pathlib.Path, config: PretrainConfig) -> None:
    """Writes the resolved config beside the checkpoints, never replacing a different one."""
    output.mkdir(parents=True, exist_ok=True)
    text = config.to_yaml()
    target = output / "config.yaml"
    index = 1
    while target.exists() and target.read_text() != text:
        target = output / f"config.{index}.yaml"
        index += 1
    if target.exists():
        return
    _io.atomic_write_text(target, text)
