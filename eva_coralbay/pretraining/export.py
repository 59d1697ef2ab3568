"""Export of a pretraining checkpoint's encoder through the models layer's `save_pretrained`."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import torch

from eva_coralbay.data.profile import resolve_profile
from eva_coralbay.models import preprocessing
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.weights import save_pretrained
from eva_coralbay.pretraining.config import PretrainConfig


def export_encoder(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    branch: str = "teacher",
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes the teacher (or student) encoder of a checkpoint as model.safetensors + config.json.

    The config records the architecture, the preprocessing profile the encoder was trained with
    and where it came from.

    Args:
        checkpoint: A checkpoint written by `coralbay pretrain`.
        output: The folder to write.
        branch: 'teacher' (DINO's evaluated network) or 'student'.
        overwrite: Replace a different export already in `output`.

    Returns:
        The folder.

    Raises:
        FileNotFoundError: When the checkpoint does not exist.
        ValueError: When it is not a pretraining checkpoint.
        FileExistsError: When `output` holds a different export and `overwrite` is False.
    """
    checkpoint = pathlib.Path(checkpoint)
    if branch not in {"teacher", "student"}:
        raise ValueError(f"branch must be 'teacher' or 'student', got {branch!r}")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    contents = _load_checkpoint(checkpoint)
    config = PretrainConfig.from_dict(
        contents["hyper_parameters"]["config"], source=str(checkpoint)
    )
    prefix = f"{branch}.backbone."
    weights = {
        key[len(prefix) :]: tensor
        for key, tensor in contents["state_dict"].items()
        if key.startswith(prefix)
    }
    if not weights:
        raise ValueError(f"{checkpoint}: holds no '{prefix}*' weights")
    encoder_config = EncoderConfig(
        feature_size=config.model.feature_size,
        use_v2=config.model.use_v2,
        in_channels=config.model.in_channels,
        extra={
            preprocessing.CONFIG_KEY: resolve_profile(config.data.profile).to_dict(),
            "pretraining": {
                "method": "dino",
                "branch": branch,
                "global_step": int(contents.get("global_step", 0)),
                "checkpoint": checkpoint.name,
            },
        },
    )
    return save_pretrained(weights, output, encoder_config, overwrite=overwrite)


def _load_checkpoint(checkpoint: pathlib.Path) -> dict[str, Any]:
    try:
        # weights_only: a checkpoint is data, and loading it must never run pickled code.
        contents = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{checkpoint}: not a readable checkpoint ({error})") from error
    if (
        not isinstance(contents, dict)
        or "state_dict" not in contents
        or "config" not in contents.get("hyper_parameters", {})
    ):
        raise ValueError(
            f"{checkpoint}: not a `coralbay pretrain` checkpoint (no state_dict and "
            "hyper_parameters.config)"
        )
    return contents
