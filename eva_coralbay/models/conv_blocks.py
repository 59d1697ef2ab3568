"""An allocation-lean no-grad forward for MONAI's residual UNETR conv blocks (same numerics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import dynunet_block, unetr_block
from torch import nn


def run_unetr_block(block: unetr_block.UnetrBasicBlock, x: torch.Tensor) -> torch.Tensor:
    """Applies a residual `UnetrBasicBlock`, in place where autograd is not involved.

    MONAI's forward allocates a fresh full-size tensor for every norm; on CPU each one costs
    page faults comparable to the arithmetic. Without autograd this path normalises, activates
    and adds in place, keeps the input's memory format (channels-last feature maps go straight
    into the convolutions) and otherwise computes exactly what `block(x)` computes.

    Args:
        block: A MONAI `UnetrBasicBlock` with `res_block=True` and instance norm.
        x: Input of shape (B, C, D, H, W).
    """
    layer = block.layer
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in block.parameters())
    )
    if needs_grad or x.device.type != "cpu" or not _is_plain_residual_block(layer):
        return block(x)
    assert isinstance(layer, dynunet_block.UnetResBlock)
    slope = layer.lrelu.negative_slope
    out = layer.conv1(x)
    _instance_norm_(out, layer.norm1.eps)
    F.leaky_relu_(out, slope)
    out = layer.conv2(out)
    _instance_norm_(out, layer.norm2.eps)
    residual = x
    if hasattr(layer, "conv3"):
        residual = _pointwise_conv(layer.conv3.conv, x)
        _instance_norm_(residual, layer.norm3.eps)
    out.add_(residual)
    return F.leaky_relu_(out, slope)


def _is_plain_residual_block(layer: nn.Module) -> bool:
    """Whether `layer` is the UnetResBlock layout this fast path reproduces exactly."""
    if not isinstance(layer, dynunet_block.UnetResBlock):
        return False
    norms = [layer.norm1, layer.norm2] + ([layer.norm3] if hasattr(layer, "norm3") else [])
    plain_norms = all(
        isinstance(norm, nn.InstanceNorm3d) and not norm.affine and not norm.track_running_stats
        for norm in norms
    )
    return plain_norms and isinstance(layer.lrelu, nn.LeakyReLU)


def _pointwise_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 convolution; from a single channel it is one broadcast product."""
    assert isinstance(conv, nn.Conv3d)
    if x.shape[1] == 1 and conv.kernel_size == (1, 1, 1) and conv.bias is None:
        return x * conv.weight.view(1, -1, 1, 1, 1)
    return conv(x)


def _instance_norm_(x: torch.Tensor, eps: float) -> None:
    """Instance norm (no affine) in place, through the batch-norm kernel one sample at a time.

    For one sample, batch norm with batch statistics is instance norm; the kernel computes the
    statistics before it writes, so its output may alias its input.
    """
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
