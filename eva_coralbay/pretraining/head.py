"""DINO's projection head: MLP -> L2-normalised bottleneck -> weight-normalised prototypes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations


class DINOHead(nn.Module):
    """The projection head of DINO / DINOv2 (`dino_head.DINOHead` in facebookresearch/dinov2).

    The prototypes are a bias-free linear layer under weight normalisation; with
    `norm_last_layer` the magnitude is frozen at 1, so every prototype is a unit vector.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        norm_last_layer: bool = True,
        use_bn: bool = False,
    ) -> None:
        """Builds the head.

        Args:
            in_dim: Dimensions of the backbone embedding (24·F for CoralBay).
            out_dim: Number of prototypes.
            hidden_dim: Width of the hidden layers.
            bottleneck_dim: Width of the bottleneck.
            num_layers: Linear layers in the MLP (at least 1).
            norm_last_layer: Whether the prototypes' magnitude stays fixed at 1.
            use_bn: Batch-normalise the hidden layers (DINO's `use_bn_in_head`, for backbones
                whose embeddings differ little between inputs).
        """
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, num_layers, use_bn)
        self.apply(_init_weights)
        self.last_layer = parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        magnitude = self.prototype_magnitude()
        magnitude.data.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    def prototype_magnitude(self) -> nn.Parameter:
        """The weight-norm magnitude (g) of the prototypes, one per prototype."""
        parametrizations = self.last_layer.parametrizations
        assert isinstance(parametrizations, nn.ModuleDict)
        magnitude = getattr(parametrizations["weight"], "original0")  # noqa: B009
        assert isinstance(magnitude, nn.Parameter)
        return magnitude

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Maps (B, in_dim) embeddings to (B, out_dim) float32 prototype scores.

        The head runs in float32 even under autocast, as DINOv2 keeps its heads: the scores
        are cosines divided by temperatures near 0.04, and a bfloat16 cosine (8 bits) would
        put about 0.1 nat of noise on every logit.
        """
        with torch.autocast(embeddings.device.type, enabled=False):
            bottleneck = nn.functional.normalize(self.mlp(embeddings.float()), dim=-1, p=2)
            return self.last_layer(bottleneck)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, use_bn: bool) -> nn.Module:
    if num_layers == 1:
        return nn.Linear(in_dim, out_dim)
    layers: list[nn.Module] = []
    for width_in in [in_dim] + [hidden_dim] * (num_layers - 2):
        layers.append(nn.Linear(width_in, hidden_dim))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
