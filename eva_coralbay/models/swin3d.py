"""A fast 3D Swin Transformer with the numerics and state_dict of MONAI's SwinUNETR backbone."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import unetr_block
from torch import nn
from typing_extensions import override

from eva_coralbay.models import conv_blocks

PATCH_SIZE = 2
"""Edge of the cubic patches the patch embedding turns into tokens."""

WINDOW_SIZE = (7, 7, 7)
"""Attention window of every stage (shrunk per dimension where the feature map is smaller)."""

DEPTHS = (2, 2, 2, 2)
"""Swin blocks per stage; the second block of each stage uses shifted windows."""

NUM_HEADS = (3, 6, 12, 24)
"""Attention heads per stage."""

MASK_VALUE = -100.0
"""Additive score between tokens of different shifted regions (MONAI's value, not -inf)."""

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

_MASK_GRAD_CHUNK = 1 << 21
"""Score elements per chunk when recomputing attention for the bias gradient (8 MiB float32)."""

_CHUNK_ELEMENTS = 1 << 22
"""Largest intermediate (elements) of the chunked no-grad path: small enough to stay in the
allocator's reused heap instead of fresh, page-faulting memory for every tensor."""


def get_window_size(
    spatial: Sequence[int], window: Sequence[int], shift: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shrinks the window (and drops the shift) along dimensions no larger than the window.

    Same rule as MONAI's `get_window_size`.

    Args:
        spatial: Feature-map size (D, H, W).
        window: Nominal window size.
        shift: Nominal shift.

    Returns:
        The window and shift actually used.
    """
    use_window = tuple(s if s <= w else w for s, w in zip(spatial, window, strict=True))
    use_shift = tuple(0 if s <= w else sh for s, w, sh in zip(spatial, window, shift, strict=True))
    return use_window, use_shift


@dataclasses.dataclass(frozen=True, eq=False)
class WindowChunk:
    """A run of windows of one mask group, processed at once by the no-grad path."""

    group: int
    """Index of the window group (and of its mask)."""

    rows: slice
    """The chunk's rows in the flattened window tokens."""

    pad_rows: torch.Tensor
    """Padding rows, relative to the chunk's first row."""

    valid_rows: torch.Tensor
    """Rows holding real tokens, relative to the chunk's first row."""

    targets: torch.Tensor
    """Token of each of `valid_rows`."""


@dataclasses.dataclass(frozen=True, eq=False)
class WindowLayout:
    """Index maps between a token grid and its (shifted, padded) windows, for one input shape.

    Windows are ordered by their shifted-mask pattern so each pattern is one contiguous slice of
    the window batch; within a pattern the order is (batch, window). Rows are counted over the
    flattened (B·nW·n) window tokens, tokens over the flattened (B·N) grid.
    """

    window: tuple[int, int, int]
    """Window actually used (D, H, W)."""

    gather: torch.Tensor
    """Token read by each row, shape (B·nW·n,); padding rows read token 0."""

    pad_rows: torch.Tensor
    """Rows that are window padding (zeroed after `norm1`, as MONAI pads after it)."""

    scatter: torch.Tensor
    """Row holding each token, shape (B·N,)."""

    groups: tuple[tuple[int, int], ...]
    """[start, end) window ranges sharing one mask pattern."""

    pattern_masks: torch.Tensor | None
    """Shift masks (G, 1, n, n) of the groups, or None without shift."""

    chunks: tuple[WindowChunk, ...]
    """The windows split into runs of at most the requested size, never across groups."""

    @property
    def tokens_per_window(self) -> int:
        """Tokens n in one window."""
        return self.window[0] * self.window[1] * self.window[2]


@functools.lru_cache(maxsize=64)
def window_layout(
    batch: int,
    spatial: tuple[int, int, int],
    window: tuple[int, int, int],
    shift: tuple[int, int, int],
    device: torch.device,
    dtype: torch.dtype,
    chunk_windows: int,
) -> WindowLayout:
    """Builds (once per shape, device and dtype) the gather/scatter maps of one block.

    The cyclic shift, the padding up to whole windows and the window partition of MONAI's
    `SwinTransformerBlock` become one gather of token rows.

    Args:
        batch: Batch size B.
        spatial: Token grid (D, H, W).
        window: Window size already shrunk by `get_window_size`.
        shift: Shift already zeroed by `get_window_size`.
        device: Where the index tensors live.
        dtype: Dtype of the shift masks.
        chunk_windows: Most windows per chunk of the no-grad path.
    """
    grid = [-(-s // w) * w for s, w in zip(spatial, window, strict=True)]
    num_windows = [p // w for p, w in zip(grid, window, strict=True)]
    tokens = spatial[0] * spatial[1] * spatial[2]
    # Rolling by -shift maps rolled position i to original position (i + shift) mod padded size.
    coords = [(torch.arange(p) + s) % p for p, s in zip(grid, shift, strict=True)]
    valid = (
        (coords[0] < spatial[0])[:, None, None]
        & (coords[1] < spatial[1])[None, :, None]
        & (coords[2] < spatial[2])[None, None, :]
    )
    flat = (
        coords[0][:, None, None] * (spatial[1] * spatial[2])
        + coords[1][None, :, None] * spatial[2]
        + coords[2][None, None, :]
    )
    flat = torch.where(valid, flat, -1)
    n = window[0] * window[1] * window[2]
    per_window = (
        flat.view(num_windows[0], window[0], num_windows[1], window[1], num_windows[2], window[2])
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(-1, n)
    )
    # Only the last window along a shifted dimension mixes two regions of the rolled volume.
    last = [(torch.arange(c) == c - 1) & (s > 0) for c, s in zip(num_windows, shift, strict=True)]
    pattern = (
        last[0].long()[:, None, None] * 4 + last[1].long()[None, :, None] * 2 + last[2].long()
    ).reshape(-1)
    offsets = torch.arange(batch)[:, None, None] * tokens
    gathers, groups, masks = [], [], []
    start = 0
    for code in range(8):
        selected = per_window[pattern == code]
        if selected.shape[0] == 0:
            continue
        gathers.append(torch.where(selected < 0, -1, selected[None] + offsets).reshape(-1))
        groups.append((start, start + batch * selected.shape[0]))
        start += batch * selected.shape[0]
        masks.append(_pattern_mask(code, window, shift))
    gather = torch.cat(gathers)
    is_pad = gather < 0
    scatter = torch.empty(batch * tokens, dtype=torch.long)
    scatter[gather[~is_pad]] = torch.nonzero(~is_pad).flatten()
    gather = torch.where(is_pad, 0, gather)
    chunks = []
    for group, (first, end) in enumerate(groups):
        for chunk_start in range(first, end, chunk_windows):
            rows = slice(chunk_start * n, min(chunk_start + chunk_windows, end) * n)
            chunk_pad = is_pad[rows]
            valid_rows = torch.nonzero(~chunk_pad).flatten()
            chunks.append(
                WindowChunk(
                    group=group,
                    rows=rows,
                    pad_rows=torch.nonzero(chunk_pad).flatten().to(device),
                    valid_rows=valid_rows.to(device),
                    targets=gather[rows][valid_rows].to(device),
                )
            )
    pattern_masks = None
    if any(shift):
        pattern_masks = torch.stack(masks)[:, None].to(device=device, dtype=dtype)
    return WindowLayout(
        window=window,
        gather=gather.to(device),
        pad_rows=torch.nonzero(is_pad).flatten().to(device),
        scatter=scatter.to(device),
        groups=tuple(groups),
        pattern_masks=pattern_masks,
        chunks=tuple(chunks),
    )


def _pattern_mask(code: int, window: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """The (n, n) shift mask of a window whose bits in `code` mark split dimensions (d=4, h=2, w=1).

    In the last window along a shifted dimension the first `window - shift` positions belong to
    one region of MONAI's `compute_mask` and the rest to the next.
    """
    labels = torch.zeros(window[0], window[1], window[2], dtype=torch.long)
    for dim, bit in enumerate((4, 2, 1)):
        if code & bit:
            split = (torch.arange(window[dim]) >= window[dim] - shift[dim]).long()
            shape = [1, 1, 1]
            shape[dim] = window[dim]
            labels = labels * 2 + split.view(shape)
    labels = labels.reshape(-1)
    different = labels[:, None] != labels[None, :]
    return torch.where(different, MASK_VALUE, 0.0)


class _FlashWindowAttention(torch.autograd.Function):
    """CPU flash attention per mask group with a gradient for the additive masks.

    `scaled_dot_product_attention` leaves its fused CPU kernel for the slow, memory-hungry math
    path as soon as `attn_mask` needs a gradient (the learnable relative-position bias). This
    function keeps the fused kernel for q, k and v and recomputes the scores chunk by chunk only
    to accumulate the mask gradient.
    """

    @staticmethod
    @override
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        qkv: torch.Tensor,
        masks: torch.Tensor,
        groups: tuple[tuple[int, int], ...],
        scale: float,
    ) -> torch.Tensor:
        outputs, lses = [], []
        for index, (start, end) in enumerate(groups):
            q, k, v = _split_heads(qkv[start:end])
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, False, attn_mask=masks[index : index + 1], scale=scale
            )
            outputs.append(out.transpose(1, 2))
            lses.append(lse)
        output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        ctx.save_for_backward(qkv, masks, output, *lses)
        ctx.groups = groups  # type: ignore[attr-defined]
        ctx.scale = scale  # type: ignore[attr-defined]
        return output

    @staticmethod
    @override
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        qkv, masks, output, *lses = ctx.saved_tensors  # type: ignore[attr-defined]
        groups: tuple[tuple[int, int], ...] = ctx.groups  # type: ignore[attr-defined]
        scale: float = ctx.scale  # type: ignore[attr-defined]
        need_qkv, need_masks = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        grad_qkv = torch.empty_like(qkv) if need_qkv else None
        grad_masks = torch.zeros_like(masks) if need_masks else None
        for index, (start, end) in enumerate(groups):
            q, k, v = _split_heads(qkv[start:end])
            out = output[start:end].transpose(1, 2)
            grad_out = grad_output[start:end].transpose(1, 2)
            mask = masks[index : index + 1]
            if grad_qkv is not None:
                grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                    grad_out, q, k, v, out, lses[index], 0.0, False, attn_mask=mask, scale=scale
                )
                target = grad_qkv[start:end]
                for slot, grad in enumerate(grads):
                    target[:, :, slot].copy_(grad.transpose(1, 2))
            if grad_masks is not None:
                grad_masks[index] = _mask_gradient(q, k, v, out, lses[index], grad_out, mask, scale)
        return grad_qkv, grad_masks, None, None


def _split_heads(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views (Bw, n, 3, heads, d) as q, k, v of shape (Bw, heads, n, d) without copying."""
    q, k, v = qkv.unbind(2)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _mask_gradient(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Sum over windows of dL/dscores, recomputed in chunks that stay small in memory.

    With P = exp(scale·qkᵀ + mask - lse) and dS = P ⊙ (dO·vᵀ - rowsum(dO ⊙ O)), the two row
    offsets ride along as an extra feature (q' = [scale·q, -lse], k' = [k, 1], and likewise for
    dO and v) so each chunk costs two matmuls and three elementwise passes.
    """
    windows, heads, n, _ = q.shape
    delta = (grad_out * out).sum(-1, keepdim=True)
    ones = q.new_ones(windows, heads, n, 1)
    q_aug = torch.cat([q * scale, -lse.unsqueeze(-1)], dim=-1)
    k_aug = torch.cat([k, ones], dim=-1)
    grad_aug = torch.cat([grad_out, -delta], dim=-1)
    v_aug = torch.cat([v, ones], dim=-1)
    chunk = max(1, _MASK_GRAD_CHUNK // (heads * n * n))
    total = torch.zeros(heads, n, n, dtype=q.dtype, device=q.device)
    for start in range(0, windows, chunk):
        part = slice(start, start + chunk)
        probs = torch.matmul(q_aug[part], k_aug[part].transpose(-1, -2))
        probs.add_(mask).exp_()
        scores_grad = torch.matmul(grad_aug[part], v_aug[part].transpose(-1, -2))
        scores_grad.mul_(probs)
        total.add_(scores_grad.sum(0))
    return total.unsqueeze(0)


def windowed_attention(
    qkv: torch.Tensor, masks: torch.Tensor, groups: tuple[tuple[int, int], ...], scale: float
) -> torch.Tensor:
    """Multi-head attention inside each window with one additive mask per window group.

    Args:
        qkv: (Bw, n, 3, heads, d) projections of the window tokens.
        masks: (G, heads, n, n) additive masks (relative-position bias plus shift mask).
        groups: [start, end) window ranges, one per mask.
        scale: Factor on q·kᵀ.

    Returns:
        (Bw, n, heads, d) attention outputs.
    """
    if (
        qkv.device.type == "cpu"
        and torch.is_grad_enabled()
        and (qkv.requires_grad or masks.requires_grad)
    ):
        output = _FlashWindowAttention.apply(qkv, masks, groups, scale)
        assert isinstance(output, torch.Tensor)
        return output
    outputs = []
    for index, (start, end) in enumerate(groups):
        q, k, v = _split_heads(qkv[start:end])
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=masks[index : index + 1], scale=scale
        )
        outputs.append(out.transpose(1, 2))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """MONAI's (n, n) index of each token pair's relative offset into the bias table."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij"))
    coords = coords.flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    for dim, size in enumerate(window):
        relative[:, :, dim] += size - 1
    relative[:, :, 0] *= (2 * window[1] - 1) * (2 * window[2] - 1)
    relative[:, :, 1] *= 2 * window[2] - 1
    return relative.sum(-1)


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
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def masks(self, layout: WindowLayout, dtype: torch.dtype) -> torch.Tensor:
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

    def __init__(self, dim: int, num_heads: int, shifted: bool) -> None:
        """Creates the block.

        Args:
            dim: Token channels.
            num_heads: Attention heads.
            shifted: Whether the windows are shifted by half a window.
        """
        super().__init__()
        self.shift = tuple(w // 2 for w in WINDOW_SIZE) if shifted else (0, 0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, 4 * dim)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the block to tokens of shape (B, D, H, W, C); returns the same shape."""
        batch, depth, height, width, channels = x.shape
        window, shift = get_window_size((depth, height, width), WINDOW_SIZE, self.shift)
        n = window[0] * window[1] * window[2]
        layout = window_layout(
            batch,
            (depth, height, width),
            window,  # type: ignore[arg-type]
            shift,  # type: ignore[arg-type]
            x.device,
            x.dtype,
            max(1, _CHUNK_ELEMENTS // (4 * channels * n)),
        )
        tokens = x.reshape(-1, channels)
        masks = self.attn.masks(layout, x.dtype)
        if torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        ):
            tokens = self._forward_differentiable(tokens, layout, masks)
        else:
            tokens = self._forward_inference(tokens, layout, masks)
        return tokens.view(x.shape)

    def _normed_windows(
        self, tokens: torch.Tensor, gather: torch.Tensor, pad_rows: torch.Tensor
    ) -> torch.Tensor:
        """`norm1` of the gathered window tokens with the padding rows zeroed."""
        windows = tokens.index_select(0, gather)
        windows = F.layer_norm(
            windows, windows.shape[-1:], self.norm1.weight, self.norm1.bias, self.norm1.eps
        )
        # The norm's backward does not need its output, so zeroing it in place is safe.
        return windows.index_fill_(0, pad_rows, 0.0)

    def _qkv(self, windows: torch.Tensor, n: int) -> torch.Tensor:
        heads = self.attn.num_heads
        return self.attn.qkv(windows).view(-1, n, 3, heads, windows.shape[-1] // heads)

    def _forward_differentiable(
        self, tokens: torch.Tensor, layout: WindowLayout, masks: torch.Tensor
    ) -> torch.Tensor:
        """Whole-tensor path for autograd."""
        windows = self._normed_windows(tokens, layout.gather, layout.pad_rows)
        qkv = self._qkv(windows, layout.tokens_per_window)
        attended = windowed_attention(qkv, masks, layout.groups, self.attn.scale)
        attended = attended.reshape(-1, tokens.shape[-1]).index_select(0, layout.scatter)
        tokens = tokens + self.attn.proj(attended)
        return tokens + self.mlp(self.norm2(tokens))

    def _forward_inference(
        self, tokens: torch.Tensor, layout: WindowLayout, masks: torch.Tensor
    ) -> torch.Tensor:
        """No-grad path in chunks: no full-size intermediate besides the result is allocated."""
        channels = tokens.shape[-1]
        n = layout.tokens_per_window
        result = tokens.clone()
        for chunk in layout.chunks:
            windows = self._normed_windows(tokens, layout.gather[chunk.rows], chunk.pad_rows)
            q, k, v = _split_heads(self._qkv(windows, n))
            attended = F.scaled_dot_product_attention(
                q, k, v, attn_mask=masks[chunk.group : chunk.group + 1], scale=self.attn.scale
            )
            attended = attended.transpose(1, 2).reshape(-1, channels)
            update = self.attn.proj(attended.index_select(0, chunk.valid_rows))
            result.index_add_(0, chunk.targets, update)
        step = max(1, _CHUNK_ELEMENTS // (4 * channels))
        for first in range(0, result.shape[0], step):
            part = result[first : first + step]
            hidden = F.gelu(self.mlp.linear1(self.norm2(part)))
            part.addmm_(hidden, self.mlp.linear2.weight.t()).add_(self.mlp.linear2.bias)
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

    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        """Creates the stage.

        Args:
            dim: Token channels.
            depth: Number of blocks (alternating regular / shifted windows).
            num_heads: Attention heads.
        """
        super().__init__()
        self.blocks = nn.ModuleList(
            [SwinBlock(dim, num_heads, shifted=index % 2 == 1) for index in range(depth)]
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

    def __init__(self, in_channels: int = 1, feature_size: int = 48, use_v2: bool = True) -> None:
        """Creates the transformer.

        Args:
            in_channels: Input channels.
            feature_size: Channels F of the first stage (2F, 4F, 8F, 16F after each merge).
            use_v2: Whether to add the residual conv block at the start of each stage.
        """
        super().__init__()
        self.use_v2 = use_v2
        self.patch_embed = PatchEmbed(in_channels, feature_size)
        stages = [
            BasicLayer(feature_size * 2**index, DEPTHS[index], NUM_HEADS[index])
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
    def forward(self, x: torch.Tensor, normalize: bool = True) -> list[torch.Tensor]:
        """Computes MONAI's five hidden states.

        Args:
            x: Input of shape (B, C, D, H, W).
            normalize: Whether to layer-normalise each hidden state over channels (MONAI's
                `proj_out`).

        Returns:
            Five (B, C_i, D_i, H_i, W_i) maps: the patch embedding and the output of each stage
            (after its patch merging), as channels-first views of channels-last memory.
        """
        tokens = self.patch_embed(x)
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
