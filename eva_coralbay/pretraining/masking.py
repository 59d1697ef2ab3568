"""iBOT's masks: which token positions of which global crops the student sees masked."""

from __future__ import annotations

import torch


def sample_token_masks(
    num_crops: int,
    grid: tuple[int, int, int],
    ratio_range: tuple[float, float],
    probability: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random masks on the deepest token grid, following DINOv2's `collate_data_and_cast`.

    `round(num_crops * probability)` crops, chosen at random, are masked; their masked shares
    spread evenly over `ratio_range` (the i-th draws uniformly from the i-th of as many equal
    sub-ranges), and at least one position of a masked crop is masked.

    Args:
        num_crops: Crops in the batch.
        grid: Token positions (d, h, w) of the deepest feature map.
        ratio_range: [low, high] share of positions masked in a masked crop.
        probability: Share of the crops that are masked.
        generator: Random source (CPU).

    Returns:
        (num_crops, d, h, w) booleans, True where a position is masked.
    """
    positions = grid[0] * grid[1] * grid[2]
    masks = torch.zeros(num_crops, positions, dtype=torch.bool)
    masked_crops = round(num_crops * probability)
    if masked_crops == 0:
        return masks.view(num_crops, *grid)
    bounds = torch.linspace(ratio_range[0], ratio_range[1], masked_crops + 1)
    crops = torch.randperm(num_crops, generator=generator)[:masked_crops]
    for index, crop in enumerate(crops.tolist()):
        low, high = float(bounds[index]), float(bounds[index + 1])
        ratio = low + (high - low) * float(torch.rand((), generator=generator))
        count = min(positions, max(1, round(ratio * positions)))
        masks[crop, torch.randperm(positions, generator=generator)[:count]] = True
    return masks.view(num_crops, *grid)
