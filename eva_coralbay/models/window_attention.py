"""Window attention on PyTorch's fused CPU kernel, with a gradient for the additive masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from typing_extensions import override

from eva_coralbay.models import cpu_caches

_BACKWARD_CACHE_SHARE = 0.5
"""Share of the last-level cache the two step buffers of the attention backward fill together.

The step's buffers are read and written six times; sized to stay in cache across the passes,
the backward ran 1.3x (first stage, 96³ input) to 2x (second stage) faster than with 64 MiB
steps on a 2-core Xeon (16 MiB steps); much smaller steps pay for the per-op overhead instead.
On a 2-core AMD EPYC (AVX-512, 1 MiB L2 per core, 32 MiB L3) the time is flat within 7% from
1 to 128 MiB steps (three sweeps, F=48 stages 1 and 2 at 96³). A share of the cache, not a
fixed size, so that machines with smaller caches get smaller steps."""

_BACKWARD_STEP_BOUNDS = (1 << 18, 1 << 24)
"""Fewest and most score elements per step buffer (1 MiB to 64 MiB float32)."""

_FALLBACK_LAST_LEVEL_BYTES = 32 << 20
"""The last-level cache assumed where the machine does not say (a 2-core cloud slice)."""


def backward_step_elements(caches: cpu_caches.CpuCaches) -> int:
    """Score elements per step buffer of the attention backward on a machine with `caches`."""
    cache_bytes = caches.last_level_bytes or _FALLBACK_LAST_LEVEL_BYTES
    elements = int(cache_bytes * _BACKWARD_CACHE_SHARE) // (2 * 4)  # two float32 buffers
    low, high = _BACKWARD_STEP_BOUNDS
    return min(max(elements, low), high)


_LOG_PROB_FLOOR = -40.0
"""Floor on recomputed log-probabilities (P >= 4e-18): keeps P and the products P·dP out of the
denormal range, where x86 arithmetic is 10-100 times slower."""


class _FlashWindowAttention(torch.autograd.Function):
    """CPU flash attention per mask group with a gradient for the additive masks.

    `scaled_dot_product_attention` leaves its fused CPU kernel for the slow, memory-hungry math
    path as soon as `attn_mask` needs a gradient (the learnable relative-position bias). This
    function keeps the fused kernel for the forward pass and saves only q, k, v, the output and
    the log-sum-exp; its backward recomputes the probabilities a few windows at a time.
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
            q, k, v = split_heads(qkv[start:end])
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
            q, k, v = (part.float() for part in split_heads(qkv[start:end]))
            # In float32 whatever the forward's dtype (bfloat16 under autocast): the recomputed
            # probabilities and the mask gradient, summed over every window, need its precision.
            with torch.autocast(qkv.device.type, enabled=False):
                *grads, grad_mask = attention_backward(
                    q,
                    k,
                    v,
                    output[start:end].transpose(1, 2).float(),
                    lses[index].float(),
                    grad_output[start:end].transpose(1, 2).float(),
                    masks[index : index + 1].float(),
                    scale,
                )
            if grad_qkv is not None:
                target = grad_qkv[start:end]
                for slot, grad in enumerate(grads):
                    target[:, :, slot].copy_(grad.transpose(1, 2))
            if grad_masks is not None:
                grad_masks[index] = grad_mask[0]
        return grad_qkv, grad_masks, None, None


def split_heads(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views (Bw, n, 3, heads, d) as q, k, v of shape (Bw, heads, n, d) without copying."""
    q, k, v = qkv.unbind(2)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of attention for q, k, v and the additive mask (summed over windows).

    Recomputes the probabilities a few windows at a time, so no (W, heads, n, n) tensor is ever
    held, yet each step is a handful of large batched ops (many small ops stall when the
    intra-op threads compete with other processes for the cores). With
    P = exp(scale·qkᵀ + mask - lse) and dS = P ⊙ (dO·vᵀ - rowsum(dO ⊙ O)), the two row offsets
    ride along as an extra feature (q' = [scale·q, -lse], k' = [k, 1], likewise for dO and v).

    Log-probabilities are floored at `_LOG_PROB_FLOOR` first: MONAI's -100 shift mask would
    otherwise make P, dS and then dq and dk denormal, and denormal arithmetic is 10-100 times
    slower on x86. The floor changes only probabilities below 4e-18, whose share of any
    gradient is more than ten orders of magnitude below float32 resolution.

    Args:
        q: Queries (W, heads, n, d); k, v, out and grad_out alike.
        k: Keys.
        v: Values.
        out: Attention output of the forward pass.
        lse: Log-sum-exp of the scores (W, heads, n) from the forward pass.
        grad_out: Gradient of the loss for `out`.
        mask: The additive mask (1, heads, n, n) shared by the windows.
        scale: Factor on q·kᵀ.

    Returns:
        Contiguous (W, heads, n, d) gradients for q, k, v and the (1, heads, n, n) mask gradient.
    """
    windows, heads, n, _ = q.shape
    scaled_q = (q * scale).contiguous()
    scaled_k = (k * scale).contiguous()
    grad_out = grad_out.contiguous()
    delta = (grad_out * out).sum(-1, keepdim=True)
    ones = q.new_ones(windows, heads, n, 1)
    q_aug = torch.cat([scaled_q, -lse.unsqueeze(-1)], dim=-1)
    k_aug = torch.cat([k, ones], dim=-1).transpose(-1, -2)
    grad_aug = torch.cat([grad_out, -delta], dim=-1)
    v_aug = torch.cat([v, ones], dim=-1).transpose(-1, -2)
    grad_q = torch.empty_like(scaled_q)
    grad_k = torch.empty_like(scaled_q)
    grad_v = torch.empty_like(scaled_q)
    grad_mask = q.new_zeros(heads, n, n)
    step = max(1, backward_step_elements(cpu_caches.this_machine()) // (heads * n * n))
    probs_buffer = q.new_empty(min(step, windows), heads, n, n)
    scores_buffer = torch.empty_like(probs_buffer)
    for first in range(0, windows, step):
        part = slice(first, min(first + step, windows))
        probs = probs_buffer[: part.stop - first]
        scores_grad = scores_buffer[: part.stop - first]
        torch.matmul(q_aug[part], k_aug[part], out=probs)
        probs.add_(mask).clamp_(min=_LOG_PROB_FLOOR).exp_()
        torch.matmul(probs.transpose(-1, -2), grad_out[part], out=grad_v[part])
        torch.matmul(grad_aug[part], v_aug[part], out=scores_grad)
        scores_grad.mul_(probs)
        grad_mask += scores_grad.sum(0)
        torch.matmul(scores_grad, scaled_k[part], out=grad_q[part])
        torch.matmul(scores_grad.transpose(-1, -2), scaled_q[part], out=grad_k[part])
    return grad_q, grad_k, grad_v, grad_mask.unsqueeze(0)


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
        q, k, v = split_heads(qkv[start:end])
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=masks[index : index + 1], scale=scale
        )
        outputs.append(out.transpose(1, 2))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
