"""Shared helpers for the encoder parity tests."""

from __future__ import annotations

import torch


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Gives every parameter values large enough that each term shows in the outputs.

    The default initialisation leaves the relative-position bias near zero and the norms at
    identity, where a wrong bias index or norm would hide below the tolerance.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "relative_position_bias_table" in name:
                parameter.copy_(noise)
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.2 * noise)
