"""A CoralBay encoder's architecture: the fixed SwinUNETR design and its `config.json`."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

from eva_coralbay.models import preprocessing

PATCH_SIZE = 2
"""Edge of the cubic patches the patch embedding turns into tokens."""

WINDOW_SIZE = (7, 7, 7)
"""Attention window of every stage (shrunk per dimension where the feature map is smaller)."""

DEPTHS = (2, 2, 2, 2)
"""Swin blocks per stage; the second block of each stage uses shifted windows."""

NUM_HEADS = (3, 6, 12, 24)
"""Attention heads per stage."""

SIZE_MULTIPLE = PATCH_SIZE * 2 ** len(DEPTHS)
"""Input sides must be multiples of this: the patch embedding and one merging per stage."""


def input_size_problems(spatial: Sequence[int]) -> list[str]:
    """What makes spatial input sizes (D, H, W) unrunnable by the encoder; [] when they run.

    Each side must be a multiple of `SIZE_MULTIPLE`, and the deepest feature map must hold more
    than one voxel: the instance norm of the conv block on it cannot normalise a single value.
    """
    problems = []
    for name, size in zip("DHW", spatial, strict=True):
        if size % SIZE_MULTIPLE:
            below = size // SIZE_MULTIPLE * SIZE_MULTIPLE
            nearest = f"{below} or {below + SIZE_MULTIPLE}" if below else f"{SIZE_MULTIPLE}"
            problems.append(
                f"{name}={size} is not a multiple of {SIZE_MULTIPLE} (nearest valid: {nearest})"
            )
    if not problems and math.prod(size // SIZE_MULTIPLE for size in spatial) < 2:
        problems.append(
            f"the deepest feature map ({SIZE_MULTIPLE}x coarser) would be a single voxel, which "
            "the instance norm of its conv block cannot normalise; use "
            f"{2 * SIZE_MULTIPLE} or more along at least one axis"
        )
    return problems


MODEL_TYPE = "coralbay"
"""The `model_type` written into every CoralBay `config.json`."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters that fix the shapes of a CoralBay / SwinUNETR-family encoder.

    Patch size 2, window 7, depths 2-2-2-2 and heads 3-6-12-24 are the fixed SwinUNETR design;
    only the feature size, the v1/v2 variant and the input channels vary between checkpoints.
    """

    feature_size: int = 48
    """Channels of the first stage (F); the multi-scale embedding has 24·F dimensions."""

    use_v2: bool = True
    """Whether each stage has SwinUNETR-v2's extra residual convolution block."""

    in_channels: int = 1
    """Input channels (1 for CT)."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Other keys of `config.json` (for example the preprocessing profile), kept verbatim."""

    def __post_init__(self) -> None:
        """Rejects feature sizes the 3-6-12-24 head layout cannot split."""
        if self.feature_size <= 0 or self.feature_size % 12 != 0:
            raise ValueError(
                f"feature_size must be a positive multiple of 12 (heads 3-6-12-24 split "
                f"F, 2F, 4F, 8F channels), got {self.feature_size}"
            )
        if self.in_channels <= 0:
            raise ValueError(f"in_channels must be positive, got {self.in_channels}")

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing profile the weights were trained with, when `config.json` has one."""
        return preprocessing.of_config(self.extra)

    @property
    def embedding_dim(self) -> int:
        """Dimensions of the concatenated multi-scale embedding (24·F)."""
        return 24 * self.feature_size

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON-serialisable form written as `config.json`."""
        return {
            **self.extra,
            "model_type": MODEL_TYPE,
            "feature_size": self.feature_size,
            "use_v2": self.use_v2,
            "in_channels": self.in_channels,
            **_fixed_design(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> EncoderConfig:
        """Builds a config from a `config.json` mapping, checking the fixed design.

        Args:
            values: The parsed `config.json`.
            source: Where the mapping came from, for error messages.

        Raises:
            ValueError: When a key is missing or describes an architecture this encoder is not.
        """
        fixed = _fixed_design()
        for key, expected in fixed.items():
            if key in values and values[key] != expected:
                raise ValueError(
                    f"{source}: {key}={values[key]!r} is not supported (CoralBay uses {expected!r})"
                )
        if "feature_size" not in values:
            raise ValueError(f"{source}: missing required key 'feature_size'")
        extra = {
            key: value
            for key, value in values.items()
            if key not in fixed
            and key not in {"model_type", "feature_size", "use_v2", "in_channels"}
        }
        return cls(
            feature_size=int(values["feature_size"]),
            use_v2=bool(values.get("use_v2", True)),
            in_channels=int(values.get("in_channels", 1)),
            extra=extra,
        )

    @classmethod
    def from_json(cls, path: str | pathlib.Path) -> EncoderConfig:
        """Reads a `config.json` file.

        Raises:
            ValueError: When the file is not valid JSON or not a CoralBay config.
        """
        path = pathlib.Path(path)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")
        return cls.from_dict(values, source=str(path))


def _fixed_design() -> dict[str, Any]:
    """The SwinUNETR design every checkpoint shares, as `config.json` spells it."""
    return {
        "spatial_dims": 3,
        "patch_size": PATCH_SIZE,
        "window_size": WINDOW_SIZE[0],
        "depths": list(DEPTHS),
        "num_heads": list(NUM_HEADS),
    }
