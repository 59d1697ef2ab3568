"""A leaner forward for MONAI's residual UNETR conv blocks, with the same numerics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import dynunet_block, unetr_block
from torch import nn


def run_unetr_block(block: unetr_block.UnetrBasicBlock, x: torch.Tensor) -> torch.Tensor:
    """Applies a residual `UnetrBasicBlock` with exactly the arithmetic of `block(x)`.

    MONAI's forward normalises into a fresh tensor and then activates and adds in place on views
    of it. Without autograd this path instead normalises, activates and adds in place on one
    buffer: on CPU every fresh full-size tensor costs page faults comparable to the arithmetic.
    With autograd it activates and adds out of place, because autograd answers in-place ops on
    views with two full-size copies each in the backward pass.

    A channels-last input goes straight into the first convolution (faster in oneDNN); the norms
    always run on contiguous maps because PyTorch's channels-last batch-norm kernel accumulates
    its statistics too coarsely (errors near 1e-3 on 96³ maps).

    Args:
        block: A MONAI `UnetrBasicBlock` with `res_block=True` and instance norm.
        x: Input of shape (B, C, D, H, W).
    """
    layer = block.layer
    single_voxel = x.shape[2:].numel() == 1  # MONAI's path raises for these, as it should
    norms = _plain_instance_norms(layer)
    if single_voxel or x.device.type != "cpu" or norms is None:
        return block(x)
    assert isinstance(layer, dynunet_block.UnetResBlock) and isinstance(layer.lrelu, nn.LeakyReLU)
    slope = layer.lrelu.negative_slope
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in block.parameters())
    )
    if needs_grad:
        out = F.leaky_relu(norms[0](layer.conv1(x)), slope)
        out = norms[1](layer.conv2(out))
        residual = norms[2](layer.conv3(x)) if len(norms) == 3 else x
        return F.leaky_relu(out + residual, slope)
    out = layer.conv1(x).contiguous()
    _instance_norm_(out, norms[0].eps)
    F.leaky_relu_(out, slope)
    out = layer.conv2(out)
    _instance_norm_(out, norms[1].eps)
    residual = x
    if len(norms) == 3:
        residual = _pointwise_conv(layer.get_submodule("conv3.conv"), x).contiguous()
        _instance_norm_(residual, norms[2].eps)
    out.add_(residual)
    return F.leaky_relu_(out, slope)


def _plain_instance_norms(layer: nn.Module) -> list[nn.InstanceNorm3d] | None:
    """The norms of a UnetResBlock this fast path reproduces exactly, else None."""
    if not isinstance(layer, dynunet_block.UnetResBlock) or not isinstance(
        layer.lrelu, nn.LeakyReLU
    ):
        return None
    names = ["norm1", "norm2"] + (["norm3"] if hasattr(layer, "norm3") else [])
    norms = [getattr(layer, name) for name in names]
    for norm in norms:
        if not isinstance(norm, nn.InstanceNorm3d) or norm.affine or norm.track_running_stats:
            return None
    return norms


def _pointwise_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 convolution; from a single channel it is one broadcast product."""
    assert isinstance(conv, nn.Conv3d)
    if x.shape[1] == 1 and conv.kernel_size == (1, 1, 1) and conv.bias is None:
        return x * conv.weight.view(1, -1, 1, 1, 1)
    return conv(x)


def _instance_norm_(x: torch.Tensor, eps: float) -> None:
    """Instance norm (no affine) in place on a contiguous map, one sample at a time.

    For one sample, batch norm with batch statistics is instance norm; the kernel computes the
    statistics before it writes, so its output may alias its input.
    """
    assert x.is_contiguous()
    channels = x.shape[1]
    for index in range(x.shape[0]):
        sample = x[index : index + 1]
        mean = x.new_empty(channels)
        invstd = x.new_empty(channels)
        torch.ops.aten.native_batch_norm.out(
            sample,
            None,
            None,
            None,
            None,
            True,
            0.0,
            eps,
            out=sample,
            save_mean=mean,
            save_invstd=invstd,
        )
