"""The preprocessing each model expects, carried by its registry entry and its `config.json`."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

CONFIG_KEY = "preprocessing"
"""The key of `config.json` under which an export records the preprocessing it was trained with."""

CORALBAY: Mapping[str, Any] = {
    "orientation": "RAS",
    "spacing": [1.5, 1.5, 1.5],
    "intensity_range": [-1000.0, 1000.0],
    "output_range": [0.0, 1.0],
}
"""CoralBay's published preprocessing: RAS, 1.5 mm isotropic, HU [-1000, 1000] -> [0, 1]."""

EVA_RADIOLOGY: Mapping[str, Any] = {
    "orientation": "SPL",
    "spacing": [1.5, 1.5, 1.5],
    "intensity_range": [-175.0, 250.0],
    "output_range": [0.0, 1.0],
}
"""What eva's 3D radiology configs (btcv, lits17, msd_task7_pancreas) give every backbone.

eva's dataset loaders reorient NIfTI to PLS and move the superior axis first (`[T, H, W]` =
superior, posterior, left: axis codes SPL); its configs then resample to 1.5 mm and scale
HU [-175, 250] to [0, 1] with clipping, whatever the backbone.
"""

EVA_RADIOLOGY_MODELS = (
    "radiology/swin_unetr_encoder",
    "radiology/voco_b",
    "radiology/voco_l",
    "radiology/voco_h",
    "radiology/suprem_swin_unetr",
    "radiology/suprem_segresnet",
    "radiology/universal_swinunetr",
)
"""eva 0.4.5's own 3D radiology backbones, evaluated by its configs with `EVA_RADIOLOGY`."""

BY_REGISTRY_NAME: Mapping[str, Mapping[str, Any]] = {
    "radiology/coralbay": CORALBAY,
    "radiology/coralbay_random": CORALBAY,
    **dict.fromkeys(EVA_RADIOLOGY_MODELS, EVA_RADIOLOGY),
}
"""The preprocessing of every backbone registry entry this plugin knows: its own entries
(`models.registry.ENTRIES`, a test keeps the two in step) and eva's radiology backbones."""


def of_registry_name(model_name: str) -> dict[str, Any]:
    """Returns the preprocessing (a `PreprocessingProfile.to_dict` mapping) of a registry entry.

    There is deliberately no fallback: an unknown model fed CoralBay's (or eva's) window would
    embed plausibly but wrongly.

    Args:
        model_name: A backbone registry name, e.g. "radiology/coralbay" or "radiology/voco_b".

    Raises:
        ValueError: For a name without a known preprocessing; the message lists the known names.
    """
    if model_name not in BY_REGISTRY_NAME:
        raise ValueError(
            f"no preprocessing profile is known for model {model_name!r}; known: "
            f"{', '.join(BY_REGISTRY_NAME)}. Pass a PreprocessingProfile explicitly for other "
            "models, or use a checkpoint whose config.json records its 'preprocessing'."
        )
    return copy.deepcopy(dict(BY_REGISTRY_NAME[model_name]))


def of_config(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Returns the preprocessing a `config.json` mapping records, or None when it has none.

    Raises:
        ValueError: When the key is present but not a mapping.
    """
    recorded = config.get(CONFIG_KEY)
    if recorded is None:
        return None
    if not isinstance(recorded, Mapping):
        raise ValueError(
            f"config.json's {CONFIG_KEY!r} must be a mapping of profile fields, got {recorded!r}"
        )
    return copy.deepcopy(dict(recorded))
