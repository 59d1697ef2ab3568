"""The encoder that pretraining trains, and its multi-scale embedding."""

from __future__ import annotations

import torch
from torch import nn

from eva_coralbay.models.config import EncoderConfig


def build_encoder(config: EncoderConfig) -> nn.Module:
    """Builds an untrained CoralBay encoder (eva's `SwinUNETREncoder` interface and state_dict).

    Args:
        config: Feature size, v1/v2 variant and input channels.
    """
    from eva.vision.models.networks.backbones.radiology import SwinUNETREncoder

    return SwinUNETREncoder(
        in_channels=config.in_channels,
        feature_size=config.feature_size,
        use_v2=config.use_v2,
    )


def multiscale_embedding(encoder: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """The concatenated multi-scale embedding (B, 24·F) of a batch of crops (B, C, D, H, W)."""
    return encoder.forward_encoders(encoder.forward_features(crops))  # type: ignore[operator]
