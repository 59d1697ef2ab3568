"""The encoder that pretraining trains, and its multi-scale embedding."""

from __future__ import annotations

import torch

from eva_coralbay.models.config import EncoderConfig
from eva_coralbay.models.encoder import CoralBayEncoder


def build_encoder(config: EncoderConfig) -> CoralBayEncoder:
    """Builds an untrained CoralBay encoder (eva's `SwinUNETREncoder` interface and state_dict).

    Args:
        config: Feature size, v1/v2 variant and input channels.
    """
    return CoralBayEncoder.from_config(config)


def multiscale_embedding(encoder: CoralBayEncoder, crops: torch.Tensor) -> torch.Tensor:
    """The concatenated multi-scale embedding (B, 24·F) of a batch of crops (B, C, X, Y, Z)."""
    return encoder.forward_encoders(encoder.forward_features(crops))
