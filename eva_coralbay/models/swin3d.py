"""A fast 3D Swin Transformer with the numerics and state_dict of MONAI's SwinUNETR backbone."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import unetr_block
from torch import nn
from torchvision import ops
from typing_extensions import override

from eva_coralbay.models import conv_blocks, window_attention, windows
from eva_coralbay.models.architecture import DEPTHS, NUM_HEADS, PATCH_SIZE, WINDOW_SIZE

__all__ = ["DEPTHS", "NUM_HEADS", "PATCH_SIZE", "WINDOW_SIZE"]

_MERGING_OFFSETS = (
    (0, 0, 0),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (1, 1, 0),
    (1, 0, 1),
    (0, 1, 1),
    (1, 1, 1),
)
"""MONAI's `PatchMerging` (v0.9 "merging") order of the eight (d, h, w) neighbours."""

_CHUNK_ELEMENTS = 1 << 24
"""Largest intermediate (elements, 64 MiB float32) of the chunked no-grad path: bounds its
memory, while keeping the op count low (each op is a parallel region, and many small regions
stall badly when other processes compete for the cores)."""


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matrix products on `x` run in: autocast's where it is on, else `x`'s own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class WindowAttention(nn.Module):
    """Window attention parameters with MONAI's names: bias table, its index, qkv and proj."""

    def __init__(self, dim: int, num_heads: int, window: Sequence[int] = WINDOW_SIZE) -> None:
        """Creates the layers.

        Args:
            dim: Token channels.
            num_heads: Attention heads.
            window: Nominal window size.
        """
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        table_size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads))
        self.register_buffer("relative_position_index", windows.relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def masks(self, layout: windows.WindowLayout, dtype: torch.dtype) -> torch.Tensor:
        """Relative-position bias (plus shift masks) per window group, (G, heads, n, n).

        Gathered from the table on every call so training updates reach it; like MONAI, a
        shrunken window of n tokens reads the top-left n x n block of the 7x7x7 index.
        """
        n = layout.tokens_per_window
        index = self.relative_position_index[:n, :n].reshape(-1)  # type: ignore[index]
        bias = self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)
        bias = bias.to(dtype).unsqueeze(0)
        if layout.pattern_masks is None:
            return bias
        return bias + layout.pattern_masks


class MLPBlock(nn.Module):
    """The transformer MLP with MONAI's `MLPBlock` names (exact GELU)."""

    def __init__(self, dim: int, hidden: int) -> None:
        """Creates the two linear layers."""
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.gelu(self.linear1(x)))


class SwinBlock(nn.Module):
    """One (optionally shifted) window-attention block on channels-last tokens."""

    def __init__(self, dim: int, num_heads: int, shifted: bool, drop_path: float = 0.0) -> None:
        """Creates the block.

        Args:
            dim: Token channels.
            num_heads: Attention heads.
            shifted: Whether the windows are shifted by half a window.
            drop_path: Probability of skipping each residual branch for a whole sample while
                training (stochastic depth); applied only where autograd runs.
        """
        super().__init__()
        self.drop_path = drop_path
        self.shift = tuple(w // 2 for w in WINDOW_SIZE) if shifted else (0, 0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, 4 * dim)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the block to tokens of shape (B, D, H, W, C); returns the same shape."""
        batch, depth, height, width, channels = x.shape
        window, shift = windows.get_window_size((depth, height, width), WINDOW_SIZE, self.shift)
        n = window[0] * window[1] * window[2]
        dtype = compute_dtype(x)
        layout = windows.window_layout(
            batch,
            (depth, height, width),
            window,  # type: ignore[arg-type]
            shift,  # type: ignore[arg-type]
            x.device,
            dtype,
            max(1, _CHUNK_ELEMENTS // (4 * channels * n)),
        )
        tokens = x.reshape(-1, channels)
        masks = self.attn.masks(layout, dtype)
        if torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        ):
            tokens = self._forward_differentiable(tokens, layout, masks, batch)
        else:
            tokens = self._forward_inference(tokens, layout, masks)
        return tokens.view(x.shape)

    def _normed_rows(self, rows: torch.Tensor, pad_rows: torch.Tensor) -> torch.Tensor:
        """`norm1` of gathered window rows with the padding rows zeroed."""
        rows = F.layer_norm(
            rows, rows.shape[-1:], self.norm1.weight, self.norm1.bias, self.norm1.eps
        )
        # The norm's backward does not need its output, so zeroing it in place is safe.
        return rows.index_fill_(0, pad_rows, 0.0)

    def _qkv(self, rows: torch.Tensor, n: int) -> torch.Tensor:
        heads = self.attn.num_heads
        return self.attn.qkv(rows).view(-1, n, 3, heads, rows.shape[-1] // heads)

    def _forward_differentiable(
        self, tokens: torch.Tensor, layout: windows.WindowLayout, masks: torch.Tensor, batch: int
    ) -> torch.Tensor:
        """Whole-tensor path for autograd."""
        rows = self._normed_rows(windows.gather_window_rows(tokens, layout), layout.pad_rows)
        qkv = self._qkv(rows, layout.tokens_per_window)
        attended = window_attention.windowed_attention(qkv, masks, layout.groups, self.attn.scale)
        attended = windows.scatter_window_rows(attended.reshape(-1, tokens.shape[-1]), layout)
        tokens = tokens + self._drop_path(self.attn.proj(attended), batch)
        return tokens + self._drop_path(self.mlp(self.norm2(tokens)), batch)

    def _drop_path(self, branch: torch.Tensor, batch: int) -> torch.Tensor:
        """Stochastic depth on a residual branch of (B·N, C) rows: zeroed per sample."""
        if not self.training or self.drop_path == 0.0:
            return branch
        per_sample = branch.view(batch, -1, branch.shape[-1])
        return ops.stochastic_depth(per_sample, self.drop_path, "row", True).view_as(branch)

    def _forward_inference(
        self, tokens: torch.Tensor, layout: windows.WindowLayout, masks: torch.Tensor
    ) -> torch.Tensor:
        """No-grad path in chunks: no full-size intermediate besides the result is allocated."""
        channels = tokens.shape[-1]
        n = layout.tokens_per_window
        result = torch.empty_like(tokens)
        for chunk in layout.chunks:
            rows = tokens.index_select(0, layout.gather[chunk.rows])
            rows = self._normed_rows(rows, chunk.pad_rows)
            q, k, v = window_attention.split_heads(self._qkv(rows, n))
            attended = F.scaled_dot_product_attention(
                q, k, v, attn_mask=masks[chunk.group : chunk.group + 1], scale=self.attn.scale
            )
            attended = attended.transpose(1, 2).reshape(-1, channels)
            update = self.attn.proj(attended.index_select(0, chunk.valid_rows))
            # The residual is added into the token dtype (under autocast `update` may be
            # bfloat16 while the tokens are float32). index_copy_, not index_add_: the latter
            # stalls for ~100 ms a call with two threads.
            residual = tokens.index_select(0, chunk.targets).add_(update)
            result.index_copy_(0, chunk.targets, residual)
        step = max(1, _CHUNK_ELEMENTS // (4 * channels))
        for first in range(0, result.shape[0], step):
            part = result[first : first + step]
            hidden = F.gelu(self.mlp.linear1(self.norm2(part)))
            if hidden.dtype == part.dtype == self.mlp.linear2.weight.dtype:
                part.addmm_(hidden, self.mlp.linear2.weight.t()).add_(self.mlp.linear2.bias)
            else:  # autocast: the layer computes in its dtype, the sum stays in the tokens'
                part.add_(self.mlp.linear2(hidden))
        return result


class PatchMerging(nn.Module):
    """MONAI's `PatchMerging` ("merging", v0.9 layout): 2x2x2 neighbours -> LayerNorm -> linear."""

    def __init__(self, dim: int) -> None:
        """Creates the reduction (8·dim -> 2·dim) and its norm, in MONAI's order."""
        super().__init__()
        self.reduction = nn.Linear(8 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(8 * dim)
        # The neighbours are gathered in plain (d, h, w) order with one reshape; permuting the
        # norm and reduction weights instead of the data reproduces MONAI's channel order.
        order = [_MERGING_OFFSETS.index(offset) for offset in itertools.product((0, 1), repeat=3)]
        channels = torch.arange(8 * dim).view(8, dim)[order].reshape(-1)
        self.register_buffer("_channel_order", channels, persistent=False)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halves (B, D, H, W, C) tokens to (B, D/2, H/2, W/2, 2C), padding odd sizes like MONAI."""
        batch, depth, height, width, channels = x.shape
        if depth % 2 or height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2, 0, depth % 2))
            batch, depth, height, width, channels = x.shape
        merged = (
            x.view(batch, depth // 2, 2, height // 2, 2, width // 2, 2, channels)
            .permute(0, 1, 3, 5, 2, 4, 6, 7)
            .reshape(batch, depth // 2, height // 2, width // 2, 8 * channels)
        )
        order: torch.Tensor = self._channel_order  # type: ignore[assignment]
        merged = F.layer_norm(
            merged,
            (8 * channels,),
            self.norm.weight.index_select(0, order),
            self.norm.bias.index_select(0, order),
            self.norm.eps,
        )
        return F.linear(merged, self.reduction.weight.index_select(1, order))


class BasicLayer(nn.Module):
    """One stage: a regular and a shifted Swin block, then patch merging (MONAI's names)."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, drop_paths: Sequence[float] = ()
    ) -> None:
        """Creates the stage.

        Args:
            dim: Token channels.
            depth: Number of blocks (alternating regular / shifted windows).
            num_heads: Attention heads.
            drop_paths: Stochastic-depth rate of each block (none by default).
        """
        super().__init__()
        rates = list(drop_paths) or [0.0] * depth
        self.blocks = nn.ModuleList(
            [
                SwinBlock(dim, num_heads, shifted=index % 2 == 1, drop_path=rates[index])
                for index in range(depth)
            ]
        )
        self.downsample = PatchMerging(dim)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps (B, D, H, W, C) tokens to merged (B, D/2, H/2, W/2, 2C) tokens."""
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class PatchEmbed(nn.Module):
    """Non-overlapping 2x2x2 patch embedding computed as one matmul into channels-last tokens."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        """Creates the projection (stored as MONAI's `Conv3d` for state_dict compatibility)."""
        super().__init__()
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps (B, C, D, H, W) to (B, D/2, H/2, W/2, F), zero-padding odd sizes like MONAI."""
        batch, channels, depth, height, width = x.shape
        pads = [(-size) % PATCH_SIZE for size in (depth, height, width)]
        if any(pads):
            x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
            batch, channels, depth, height, width = x.shape
        p = PATCH_SIZE
        patches = (
            x.reshape(batch, channels, depth // p, p, height // p, p, width // p, p)
            .permute(0, 2, 4, 6, 1, 3, 5, 7)
            .reshape(batch, depth // p, height // p, width // p, channels * p**3)
        )
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)
        return F.linear(patches, weight, self.proj.bias)


def _residual_conv_block(channels: int) -> unetr_block.UnetrBasicBlock:
    """SwinUNETR-v2's residual convolution block at the start of each stage."""
    return unetr_block.UnetrBasicBlock(
        spatial_dims=3,
        in_channels=channels,
        out_channels=channels,
        kernel_size=3,
        stride=1,
        norm_name="instance",
        res_block=True,
    )


def channels_first(tokens: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W, C) tokens as a (B, C, D, H, W) view (channels-last memory, no copy)."""
    return tokens.permute(0, 4, 1, 2, 3)


def channels_last(features: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) features as contiguous (B, D, H, W, C) tokens (free if already so)."""
    return features.permute(0, 2, 3, 4, 1).contiguous()


class SwinTransformer3D(nn.Module):
    """The SwinUNETR backbone: MONAI `SwinTransformer` semantics and state_dict, faster.

    Patch size 2, window 7, depths 2-2-2-2, heads 3-6-12-24, MONAI's "merging" patch merging,
    no patch norm, no dropout; `use_v2` adds SwinUNETR-v2's residual conv block per stage.
    """

    def __init__(
        self,
        in_channels: int = 1,
        feature_size: int = 48,
        use_v2: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        """Creates the transformer.

        Args:
            in_channels: Input channels.
            feature_size: Channels F of the first stage (2F, 4F, 8F, 16F after each merge).
            use_v2: Whether to add the residual conv block at the start of each stage.
            drop_path_rate: Stochastic depth of the last block, rising linearly from 0 at the
                first (Swin's schedule); 0 leaves the network exactly MONAI's.
        """
        super().__init__()
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.use_v2 = use_v2
        self.patch_embed = PatchEmbed(in_channels, feature_size)
        rates = torch.linspace(0.0, drop_path_rate, sum(DEPTHS)).tolist()
        starts = list(itertools.accumulate(DEPTHS, initial=0))
        stages = [
            BasicLayer(
                feature_size * 2**index,
                DEPTHS[index],
                NUM_HEADS[index],
                rates[starts[index] : starts[index + 1]],
            )
            for index in range(len(DEPTHS))
        ]
        self.layers1 = nn.ModuleList([stages[0]])
        self.layers2 = nn.ModuleList([stages[1]])
        self.layers3 = nn.ModuleList([stages[2]])
        self.layers4 = nn.ModuleList([stages[3]])
        if use_v2:
            convs = [_residual_conv_block(feature_size * 2**index) for index in range(4)]
            self.layers1c = nn.ModuleList([convs[0]])
            self.layers2c = nn.ModuleList([convs[1]])
            self.layers3c = nn.ModuleList([convs[2]])
            self.layers4c = nn.ModuleList([convs[3]])

    def _stage(self, index: int) -> nn.Module:
        return getattr(self, f"layers{index + 1}")[0]

    def _stage_conv(self, index: int) -> unetr_block.UnetrBasicBlock:
        return getattr(self, f"layers{index + 1}c")[0]

    @override
    def forward(
        self,
        x: torch.Tensor,
        normalize: bool = True,
        token_mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Computes MONAI's five hidden states.

        Args:
            x: Input of shape (B, C, D, H, W).
            normalize: Whether to layer-normalise each hidden state over channels (MONAI's
                `proj_out`).
            token_mask: Optional (B, D/2, H/2, W/2) booleans: patch tokens replaced by
                `mask_token` right after the patch embedding (iBOT's masked image modelling).
            mask_token: The (F,) embedding of a masked patch.

        Returns:
            Five (B, C_i, D_i, H_i, W_i) maps: the patch embedding and the output of each stage
            (after its patch merging), as channels-first views of channels-last memory.
        """
        tokens = self.patch_embed(x)
        if token_mask is not None:
            if mask_token is None:
                raise ValueError("a token_mask needs a mask_token")
            tokens = torch.where(token_mask.unsqueeze(-1), mask_token.to(tokens.dtype), tokens)
        hidden = [self._project_out(tokens, normalize)]
        for index in range(len(DEPTHS)):
            if self.use_v2:
                conv = self._stage_conv(index)
                tokens = channels_last(conv_blocks.run_unetr_block(conv, channels_first(tokens)))
            tokens = self._stage(index)(tokens)
            hidden.append(self._project_out(tokens, normalize))
        return hidden

    @staticmethod
    def _project_out(tokens: torch.Tensor, normalize: bool) -> torch.Tensor:
        if normalize:
            tokens = F.layer_norm(tokens, tokens.shape[-1:])
        return channels_first(tokens)
