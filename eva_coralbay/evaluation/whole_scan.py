"""The backbone of scan-level probes: each whole scan embedded window by window, then pooled."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from eva.core.models.wrappers import base as eva_wrappers
from torch import nn
from typing_extensions import override

from eva_coralbay.data import embed


class WholeScanEmbedder(nn.Module):
    """Maps a batch of whole standardised scans to their pooled multi-scale embeddings.

    For eva's embeddings writer (`backbone` of `ClassificationEmbeddingsWriter`): each scan of
    the batch, `[1, X, Y, Z]` on the profile's grid and of any size, is embedded as
    `coralbay embed` embeds it (`data.embed.embed_volume`: sliding windows, each window's maps
    pooled as it streams, no stitched full-size map), so the probe sees the same vector. Any
    encoder with `forward_features` and a multi-scale pooling works: CoralBay, and eva's
    SwinUNETR-family backbones (VoCo, SuPreM, the Universal Model).
    """

    def __init__(
        self,
        encoder: nn.Module,
        roi_size: int | Sequence[int] = embed.DEFAULT_ROI_SIZE,
        overlap: float = embed.DEFAULT_OVERLAP,
        sw_batch_size: int = 2,
        pad_value: float = 0.0,
        precision: str = "fp32",
    ) -> None:
        """Checks the encoder and the window settings.

        Args:
            encoder: The network, or an eva model wrapper around it (`ModelFromRegistry`):
                the wrapper's own forward (and its output transforms) is not used, only the
                network's feature maps.
            roi_size: Window size in voxels (multiples of 32): the model's training crop.
            overlap: Fraction of a window shared with its neighbour, in [0, 1).
            sw_batch_size: Windows per encoder call.
            pad_value: Fill where a scan is smaller than a window: air in the profile's output
                range (0.0 for CoralBay's and eva's profiles).
            precision: "fp32", "bf16" or "fp16" (CUDA) autocast of each window.

        Raises:
            TypeError: When the encoder has no feature maps or no multi-scale pooling.
            ValueError: For bad window settings.
        """
        super().__init__()
        network = encoder.model if isinstance(encoder, eva_wrappers.BaseModel) else encoder
        if not isinstance(network, nn.Module):
            raise TypeError(f"the encoder must be a torch module, got {type(network).__name__}")
        embed.multiscale_pooling(network)
        size = [roi_size] * 3 if isinstance(roi_size, int) else [int(side) for side in roi_size]
        embed.window_grid(size, size, overlap)  # bad settings fail here, before any scan
        embed.autocast_dtype(precision)
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}")
        self.encoder = network
        self.roi_size = size
        self.overlap = float(overlap)
        self.sw_batch_size = sw_batch_size
        self.pad_value = float(pad_value)
        self.precision = precision

    @override
    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        """Embeds each scan of `[B, 1, X, Y, Z]`; returns `[B, D]` on the input's device."""
        if volumes.ndim != 5 or volumes.shape[1] != 1:
            raise ValueError(f"expected scans [B, 1, X, Y, Z], got {tuple(volumes.shape)}")
        vectors = [
            embed.embed_volume(
                self.encoder,
                volume,
                roi_size=self.roi_size,
                overlap=self.overlap,
                sw_batch_size=self.sw_batch_size,
                pad_value=self.pad_value,
                precision=self.precision,
            )
            for volume in volumes
        ]
        return torch.stack(vectors).to(volumes.device)
