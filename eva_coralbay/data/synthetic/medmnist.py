"""MedMNIST-3D archives of made-up volumes, in the layout medmnist downloads (tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def write_npz(path: Path, splits: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]]) -> Path:
    """Writes a MedMNIST-layout .npz (`<split>_images`, `<split>_labels` of shape (N, 1))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    for split, (images, labels) in splits.items():
        arrays[f"{split}_images"] = np.asarray(images, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels).reshape(-1, 1)
    np.savez_compressed(path, **arrays)
    return path
