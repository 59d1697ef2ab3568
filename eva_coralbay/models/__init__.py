"""CoralBay encoders, their weights, their preprocessing and their eva registry entries.

Importing this package does nothing but make the names below available on first use: torch,
MONAI and eva (about 10 s together) load only with the module that needs them, so light tools
such as `coralbay export` or a profile lookup stay fast. Registration in eva's backbone
registry is explicit (`register_models`); the plugin's `ModelFromRegistry`, which the shipped
configs use, calls it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eva_coralbay.models.architecture import EncoderConfig
    from eva_coralbay.models.checkpoint_layouts import CheckpointError
    from eva_coralbay.models.encoder import CoralBayEncoder
    from eva_coralbay.models.registry import ModelFromRegistry, register_models
    from eva_coralbay.models.weights import (
        infer_config,
        load_encoder,
        load_weights_into,
        read_checkpoint,
        save_pretrained,
    )

_HOMES = {
    "CheckpointError": "checkpoint_layouts",
    "CoralBayEncoder": "encoder",
    "EncoderConfig": "architecture",
    "ModelFromRegistry": "registry",
    "infer_config": "weights",
    "load_encoder": "weights",
    "load_weights_into": "weights",
    "read_checkpoint": "weights",
    "register_models": "registry",
    "save_pretrained": "weights",
}

__all__ = [
    "CheckpointError",
    "CoralBayEncoder",
    "EncoderConfig",
    "ModelFromRegistry",
    "infer_config",
    "load_encoder",
    "load_weights_into",
    "read_checkpoint",
    "register_models",
    "save_pretrained",
]


def __getattr__(name: str) -> Any:
    """Imports the module that defines `name` on first access (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
