"""Per-step schedules: cosine with warm-up (lr, weight decay, momentum) and linear warm-up."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up from `warmup_start` to `base`, then a half cosine from `base` to `final`.

    The value at step `total_steps - 1` is exactly `final`; later steps stay there.
    """

    base: float
    """Value at the end of the warm-up (at step 0 when there is none)."""

    final: float
    """Value at the last step."""

    total_steps: int
    """Steps the schedule spans, warm-up included."""

    warmup_steps: int = 0
    """Steps of linear warm-up."""

    warmup_start: float = 0.0
    """Value at step 0 when there is a warm-up."""

    def __post_init__(self) -> None:
        """Rejects warm-ups that do not fit into the schedule."""
        if self.total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(
                f"warmup_steps must lie in [0, total_steps={self.total_steps}], "
                f"got {self.warmup_steps}"
            )

    def __call__(self, step: int) -> float:
        """Returns the value at `step` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_start + (self.base - self.warmup_start) * step / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        if decay_steps <= 1:
            return self.final
        progress = min(step - self.warmup_steps, decay_steps - 1) / (decay_steps - 1)
        return self.final + 0.5 * (self.base - self.final) * (1.0 + math.cos(math.pi * progress))


@dataclasses.dataclass(frozen=True)
class LinearWarmup:
    """Rises linearly from `start` to `end` over `warmup_steps`, then stays at `end`."""

    start: float
    """Value at step 0."""

    end: float
    """Value from step `warmup_steps` on."""

    warmup_steps: int
    """Steps of the rise (0: always `end`)."""

    def __call__(self, step: int) -> float:
        """Returns the value at `step` (0-based)."""
        if step >= self.warmup_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.warmup_steps
