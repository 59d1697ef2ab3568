"""Runs a few real Lightning training steps of a pretraining module on in-memory crops."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader


def fit_on_crops(
    module: L.LightningModule,
    crops: dict[str, torch.Tensor],
    *,
    precision: str = "32-true",
    callbacks: Sequence[L.Callback] = (),
) -> None:
    """One optimiser step on one batch of crops, on the CPU, without logs or checkpoints."""
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,  # type: ignore[arg-type]
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(module, DataLoader([crops], batch_size=None))  # type: ignore[arg-type]
