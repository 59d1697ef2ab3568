"""CoralBay encoders, their weights and their eva registrations.

Importing this package registers `radiology/coralbay` (published weights) and
`radiology/coralbay_random` (untrained) in eva's backbone registry.
"""

from eva_coralbay.models.config import EncoderConfig
from eva_coralbay.models.encoder import CoralBayEncoder
from eva_coralbay.models.registry import ModelFromRegistry, register_models
from eva_coralbay.models.weights import (
    CheckpointError,
    infer_config,
    load_encoder,
    load_weights_into,
    read_checkpoint,
    save_pretrained,
)

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
