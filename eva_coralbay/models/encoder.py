"""CoralBayEncoder: eva's `SwinUNETREncoder` interface and state_dict on the fast 3D Swin."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from monai.inferers.inferer import Inferer
from monai.networks.blocks import unetr_block
from torch import nn
from typing_extensions import override

from eva_coralbay.models import swin3d
from eva_coralbay.models.architecture import EncoderConfig, input_size_problems
from eva_coralbay.models.conv_blocks import run_unetr_block

EmbeddingsType = Literal["multiscale", "head"]


def check_spatial_shape(shape: torch.Size | tuple[int, ...]) -> None:
    """Rejects a (B, C, D, H, W) shape the encoder cannot run: sizes not multiples of 32, or 32³.

    Raises:
        ValueError: Naming the shape and, per offending dimension, the nearest valid sizes.
    """
    if len(shape) != 5:
        raise ValueError(f"expected a 5D input (B, C, D, H, W), got shape {tuple(shape)}")
    problems = input_size_problems(shape[2:])
    if problems:
        # For a single-voxel deepest map MONAI's own error ("more than 1 spatial element when
        # training") comes from deep inside the network, and in eval mode too.
        raise ValueError(f"input shape {tuple(shape)}: " + "; ".join(problems))


def upsample_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """A (B, d, h, w) mask on a grid `factor` times finer along each axis."""
    for dim in (1, 2, 3):
        mask = mask.repeat_interleave(factor, dim=dim)
    return mask


def _unetr_block(in_channels: int, out_channels: int) -> unetr_block.UnetrBasicBlock:
    """The residual UNETR conv block eva's `SwinUNETREncoder` puts on each skip connection."""
    return unetr_block.UnetrBasicBlock(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=3,
        stride=1,
        norm_name="instance",
        res_block=True,
    )


class CoralBayEncoder(nn.Module):
    """A SwinUNETR-style encoder with eva's `SwinUNETREncoder` interface, numerics and weights.

    Its state_dict has exactly the keys and shapes of eva's
    `SwinUNETREncoder(feature_size=F, use_v2=...)`, so one checkpoint loads strictly into either.
    """

    def __init__(
        self,
        in_channels: int = 1,
        feature_size: int = 48,
        out_indices: int | None = None,
        inferer: Inferer | None = None,
        embeddings_type: EmbeddingsType = "multiscale",
        use_v2: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        """Builds the encoder.

        Args:
            in_channels: Input channels.
            feature_size: Channels F of the first stage; must be a multiple of 12.
            out_indices: None to return the embedding from `forward`; otherwise the number of
                feature maps (counted from the deepest) `forward` returns.
            inferer: A MONAI inferer (e.g. sliding window) used for features in eval mode.
            embeddings_type: "multiscale" (24F pooled multi-scale features) or "head" (16F
                pooled deepest map).
            use_v2: Whether each Swin stage starts with SwinUNETR-v2's residual conv block.
            drop_path_rate: Stochastic depth of the last Swin block while training (a
                pretraining setting, not part of the architecture's `config.json`).
        """
        super().__init__()
        self._config = EncoderConfig(
            feature_size=feature_size, use_v2=use_v2, in_channels=in_channels
        )
        if embeddings_type not in ("multiscale", "head"):
            raise ValueError(
                f"embeddings_type must be 'multiscale' or 'head', got {embeddings_type!r}"
            )
        self._out_indices = out_indices
        self._inferer = inferer
        self._embeddings_type: EmbeddingsType = embeddings_type

        self.swinViT = swin3d.SwinTransformer3D(in_channels, feature_size, use_v2, drop_path_rate)
        self.encoder1 = _unetr_block(in_channels, feature_size)
        self.encoder2 = _unetr_block(feature_size, feature_size)
        self.encoder3 = _unetr_block(2 * feature_size, 2 * feature_size)
        self.encoder4 = _unetr_block(4 * feature_size, 4 * feature_size)
        self.encoder10 = _unetr_block(16 * feature_size, 16 * feature_size)
        self._pool_op = nn.AdaptiveAvgPool3d(output_size=(1, 1, 1))

    @classmethod
    def from_config(cls, config: EncoderConfig, **kwargs: Any) -> CoralBayEncoder:
        """Builds the encoder a `config.json` describes.

        Args:
            config: The architecture (feature size, v1/v2, input channels).
            **kwargs: Further constructor arguments (`out_indices`, `inferer`,
                `embeddings_type`, `drop_path_rate`).
        """
        encoder = cls(
            in_channels=config.in_channels,
            feature_size=config.feature_size,
            use_v2=config.use_v2,
            **kwargs,
        )
        # Keeps the keys the architecture does not use (the profile) for a later export.
        encoder._config = config
        return encoder

    @property
    def config(self) -> EncoderConfig:
        """The architecture as stored in `config.json`."""
        return self._config

    @property
    def feature_size(self) -> int:
        """Channels F of the first stage."""
        return self._config.feature_size

    @property
    def use_v2(self) -> bool:
        """Whether the Swin stages have SwinUNETR-v2's residual conv blocks."""
        return self._config.use_v2

    @property
    def embedding_dim(self) -> int:
        """Length of `forward_embeddings`' vectors: 24F (multiscale) or 16F (head)."""
        if self._embeddings_type == "head":
            return 16 * self.feature_size
        return self._config.embedding_dim

    def _forward_features(
        self,
        tensor: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The six feature maps of one network pass (no inferer)."""
        check_spatial_shape(tensor.shape)
        hidden_states = self.swinViT(tensor, token_mask=token_mask, mask_token=mask_token)
        if token_mask is not None:
            # The convolutional stem reads the voxels themselves: masked patches must be hidden
            # from it too, or the masked tokens could be read back from enc0. They read as 0.
            voxel_mask = upsample_mask(token_mask, swin3d.PATCH_SIZE)
            tensor = tensor.masked_fill(voxel_mask.unsqueeze(1), 0.0)
        enc0 = run_unetr_block(self.encoder1, tensor)
        enc1 = run_unetr_block(self.encoder2, hidden_states[0])
        enc2 = run_unetr_block(self.encoder3, hidden_states[1])
        enc3 = run_unetr_block(self.encoder4, hidden_states[2])
        dec4 = run_unetr_block(self.encoder10, hidden_states[4])
        return [enc0, enc1, enc2, enc3, hidden_states[3], dec4]

    def forward_features(
        self,
        tensor: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Computes the feature maps enc0, enc1, enc2, enc3, hid3 and dec4.

        In eval mode with an inferer, the inferer runs the network (e.g. sliding windows).

        Args:
            tensor: Input of shape (B, C, D, H, W).
            token_mask: Optional (B, D/2, H/2, W/2) booleans for masked image modelling: those
                patches enter the transformer as `mask_token` and the conv stem as 0.
            mask_token: The (F,) embedding of a masked patch.

        Raises:
            ValueError: When a network input's spatial sizes are not multiples of 32.
        """
        if token_mask is not None:
            return self._forward_features(tensor, token_mask, mask_token)
        if not self.training and self._inferer:
            return self._inferer(inputs=tensor, network=self._forward_features)  # type: ignore[return-value]
        return self._forward_features(tensor)

    def forward_multiscale(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The multi-scale embedding: pooled enc0, enc1, enc2, enc3 and dec4, concatenated (B, 24F).

        This is what CoralBay's DINO objective trains and what the probes read.
        """
        pooled = [torch.flatten(self._pool_op(f), 1) for f in features[:4] + features[5:]]
        return torch.cat(pooled, dim=1)

    def multiscale_tokens(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The multi-scale embedding per position of the deepest map: (B, N, 24F).

        Each of the five maps is average-pooled onto the deepest grid (32x coarser than the
        input) and the results concatenated, so the tokens live in the space of
        `forward_multiscale`, which is their mean over the N positions.
        """
        depth, height, width = features[5].shape[2:]
        grid = (depth, height, width)
        pooled = [F.adaptive_avg_pool3d(f, grid) for f in features[:4] + features[5:]]
        return torch.cat(pooled, dim=1).flatten(2).transpose(1, 2)

    def forward_encoders(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Eva's name for `forward_multiscale` (eva's `SwinUNETREncoder` interface calls it)."""
        return self.forward_multiscale(features)

    def embed_multiscale(self, tensor: torch.Tensor) -> torch.Tensor:
        """The multi-scale embedding (B, 24F) of a batch of crops (B, C, X, Y, Z)."""
        return self.forward_multiscale(self.forward_features(tensor))

    def forward_head(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Pools the deepest feature map: (B, 16F)."""
        return torch.flatten(self._pool_op(features[-1]), 1)

    def forward_embeddings(self, tensor: torch.Tensor) -> torch.Tensor:
        """Computes the embedding chosen by `embeddings_type`."""
        features = self.forward_features(tensor)
        if self._embeddings_type == "head":
            return self.forward_head(features)
        return self.forward_multiscale(features)

    def forward_intermediates(
        self, tensor: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the multi-scale embedding and the six feature maps (as eva does)."""
        features = self.forward_features(tensor)
        return self.forward_multiscale(features), features

    @override
    def forward(self, tensor: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The embedding when `out_indices` is None, else the last `out_indices` feature maps."""
        if self._out_indices is None:
            return self.forward_embeddings(tensor)
        features = self.forward_features(tensor)
        return features[-1 * self._out_indices :]
