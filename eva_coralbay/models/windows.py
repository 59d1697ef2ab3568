"""Window geometry of a shifted-window 3D Swin block: partition maps, shift masks, bias index."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import torch
from typing_extensions import override

MASK_VALUE = -100.0
"""Additive score between tokens of different shifted regions (MONAI's value, not -inf)."""


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
@torch.inference_mode(False)
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

    The maps are cached across calls, so they are built as normal tensors even inside
    `torch.inference_mode`: inference tensors could not be used by a later training step.

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


class _RowPermutation(torch.autograd.Function):
    """`source.index_select(0, index)` whose backward is a gather too, not a scatter-add.

    Valid when every source row that receives gradient is read by exactly one output row that
    carries gradient, as between a token grid and its window rows: `backward_index` names that
    row for each source row, and `zero_rows` lists source rows read by no output row. PyTorch's
    own backward (`index_add_`) stalls for ~100 ms per call with two threads on CPU.
    """

    @staticmethod
    @override
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        source: torch.Tensor,
        index: torch.Tensor,
        backward_index: torch.Tensor,
        zero_rows: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.backward_index = backward_index  # type: ignore[attr-defined]
        ctx.zero_rows = zero_rows  # type: ignore[attr-defined]
        return source.index_select(0, index)

    @staticmethod
    @override
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        # Index tensors, not activations: kept as attributes, they need no version checks.
        backward_index, zero_rows = ctx.backward_index, ctx.zero_rows  # type: ignore[attr-defined]
        grad_source = grad.index_select(0, backward_index)
        if zero_rows is not None:
            grad_source.index_fill_(0, zero_rows, 0.0)
        return grad_source, None, None, None


def gather_window_rows(tokens: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Window rows (B·nW·n, C) read from tokens (B·N, C); padding rows read token 0.

    The backward pass routes each token's gradient from its one real row: padding rows must be
    zeroed after this gather (as `norm1`'s output is), so their gradient is zero.
    """
    return _RowPermutation.apply(tokens, layout.gather, layout.scatter, None)  # type: ignore[return-value]


def scatter_window_rows(rows: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Tokens (B·N, C) read back from their window rows, dropping the padding rows."""
    return _RowPermutation.apply(rows, layout.scatter, layout.gather, layout.pad_rows)  # type: ignore[return-value]
