"""Whole-scan embedding: standardise with the model's profile, slide windows, pool multi-scale maps.

The encoder runs on ROI-sized windows (MONAI's `SlidingWindowInferer`); its six feature maps
are stitched over the whole standardised volume at their own resolutions, and the encoder's
`forward_multiscale` then global-average-pools the stitched maps into the 24·F multi-scale vector:
the same pooling it applies to a single crop, now over the whole scan (a volume of one window
gives exactly the single-crop embedding). Stitched maps cost memory: about 4.7·F + 4 bytes per
standardised voxel (≈ 3.6 GB for F=48 and a 250^3 volume), held on `stitch_device`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eva_coralbay import _io
from eva_coralbay.data.profile import PreprocessingProfile

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

DEFAULT_ROI_SIZE = 96
"""Window edge in voxels: CoralBay's pretraining crop (a multiple of the encoder's 32)."""

DEFAULT_OVERLAP = 0.5
"""Fraction by which neighbouring windows overlap."""


@dataclasses.dataclass(frozen=True)
class ScanEmbedding:
    """One scan's embedding and where it came from."""

    scan: str
    """The scan's path as given (a file or a DICOM series folder)."""

    embedding: list[float]
    """The pooled multi-scale vector (24·F values)."""

    source_shape: list[int]
    """Voxels of the scan as read."""

    source_spacing: list[float]
    """Millimetres per voxel of the scan as read."""

    shape: list[int]
    """Voxels of the standardised volume that was embedded."""


def build_inferer(
    roi_size: int | Sequence[int] = DEFAULT_ROI_SIZE,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = 2,
    pad_value: float = 0.0,
    device: str | torch.device | None = None,
    stitch_device: str | torch.device | None = None,
) -> Callable[..., Any]:
    """Returns the MONAI sliding-window inferer that tiles a standardised volume.

    Args:
        roi_size: Window size in voxels; each must be a multiple of 32.
        overlap: Fraction of a window shared with its neighbour.
        sw_batch_size: Windows per encoder call.
        pad_value: Fill for volumes smaller than a window (air in the profile's output range).
        device: Where windows run through the encoder.
        stitch_device: Where the stitched maps are held (CPU spares GPU memory).
    """
    from monai.inferers.inferer import SlidingWindowInferer

    sizes = [roi_size] * 3 if isinstance(roi_size, int) else list(roi_size)
    if len(sizes) != 3 or any(size <= 0 or size % 32 for size in sizes):
        raise ValueError(f"roi_size must be 3 positive multiples of 32, got {roi_size!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
    return SlidingWindowInferer(
        roi_size=sizes,
        sw_batch_size=sw_batch_size,
        overlap=overlap,
        mode="constant",
        padding_mode="constant",
        cval=pad_value,
        sw_device=device,
        device=stitch_device,
    )


PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
"""`--precision` choices: the autocast dtype of the encoder's windows (None: float32)."""


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a `--precision` choice (None: no autocast).

    Raises:
        ValueError: For a precision not in `PRECISIONS`.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    name = PRECISIONS[precision]
    return None if name is None else getattr(torch, name)


def embed_volume(
    encoder: nn.Module,
    volume: torch.Tensor,
    inferer: Callable[..., Any],
    precision: str = "fp32",
) -> torch.Tensor:
    """Embeds one standardised volume by stitching window feature maps, then pooling them.

    Args:
        encoder: A SwinUNETR-style encoder with `forward_features` (six maps) and
            `forward_multiscale` (pooled multi-scale vector), built without its own inferer.
        volume: The standardised scan, `[1, X, Y, Z]`.
        inferer: From `build_inferer`.
        precision: "fp32", or "bf16" / "fp16" to run each window under autocast (fp16: CUDA
            only); stitching and pooling stay float32 either way.

    Returns:
        The multi-scale embedding, shape `[24·F]`, on the CPU.
    """
    import torch

    dtype = autocast_dtype(precision)
    multiscale: Any = encoder.eval()  # forward_features / forward_multiscale

    def window_maps(window: torch.Tensor) -> list[torch.Tensor]:
        # On the device the inferer sends the windows to.
        with torch.autocast(window.device.type, dtype=dtype, enabled=dtype is not None):
            maps = multiscale.forward_features(window)
        return [feature_map.float() for feature_map in maps]

    with torch.inference_mode():
        maps = inferer(inputs=volume[None], network=window_maps)
        pooled = multiscale.forward_multiscale(list(maps))
    return pooled[0].float().cpu()


def load_model(
    model: str,
    checkpoint: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Builds the encoder to embed with.

    Args:
        model: A backbone registry name (ours or eva's), e.g. "radiology/coralbay".
        checkpoint: Weights to load instead of the model's own (any SwinUNETR-family
            checkpoint: file, folder, URL or Hugging Face id); `model` then only names the
            preprocessing profile.
    """
    if checkpoint is not None:
        from eva_coralbay.models.weights import load_encoder

        return load_encoder(checkpoint)
    from eva.vision.models.networks.backbones import backbone_registry

    from eva_coralbay.models.registry import register_models

    register_models()
    return backbone_registry.get(model)()


class ScanEmbedder:
    """Embeds scans with one encoder and one preprocessing profile."""

    def __init__(
        self,
        encoder: nn.Module,
        profile: PreprocessingProfile,
        *,
        roi_size: int | Sequence[int] = DEFAULT_ROI_SIZE,
        overlap: float = DEFAULT_OVERLAP,
        sw_batch_size: int = 2,
        device: str | None = None,
        stitch_device: str | None = "cpu",
        precision: str = "fp32",
    ) -> None:
        """Prepares the encoder and the sliding-window inferer.

        Args:
            encoder: See `embed_volume`.
            profile: How scans are standardised before embedding.
            roi_size: Window size in voxels (multiples of 32).
            overlap: Fraction of overlap between neighbouring windows.
            sw_batch_size: Windows per encoder call.
            device: Where the encoder runs; CUDA when available, else CPU, by default.
            stitch_device: Where the stitched feature maps are held.
            precision: "fp32", "bf16" or "fp16" (CUDA), see `embed_volume`.
        """
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = encoder.to(self.device).eval()
        self.profile = profile
        self.roi_size = [roi_size] * 3 if isinstance(roi_size, int) else list(roi_size)
        self.overlap = overlap
        autocast_dtype(precision)  # a bad choice fails here, before any scan is read
        self.precision = precision
        self._inferer = build_inferer(
            self.roi_size,
            overlap,
            sw_batch_size,
            # The window's low end is where air lands, clipped or not.
            pad_value=profile.output_range[0],
            device=self.device,
            stitch_device=stitch_device or self.device,
        )

    def embed(self, scan: str | os.PathLike[str]) -> ScanEmbedding:
        """Reads, standardises and embeds one scan.

        Raises:
            ScanReadError: When the scan cannot be read.
        """
        from eva_coralbay.data.readers import read_scan

        source = read_scan(scan)
        standardised, _ = self.profile.apply(source)
        vector = embed_volume(self.encoder, standardised.as_tensor(), self._inferer, self.precision)
        return ScanEmbedding(
            scan=str(scan),
            embedding=vector.tolist(),
            source_shape=[int(size) for size in source.shape[1:]],
            source_spacing=[float(value) for value in source.meta["spacing"]],
            shape=[int(size) for size in standardised.shape[1:]],
        )


def embeddings_table(
    embeddings: Sequence[ScanEmbedding],
    *,
    model: str,
    checkpoint: str | None,
    profile: PreprocessingProfile,
    roi_size: Sequence[int],
    overlap: float,
) -> pd.DataFrame:
    """One row per scan: provenance columns and the embedding as a list column."""
    import pandas as pd

    rows = [
        {
            "scan": item.scan,
            "model": model,
            "checkpoint": checkpoint,
            "profile_fingerprint": profile.fingerprint(),
            "profile": json.dumps(profile.to_dict(), sort_keys=True),
            "roi_size": list(roi_size),
            "overlap": overlap,
            "source_shape": item.source_shape,
            "source_spacing": item.source_spacing,
            "shape": item.shape,
            "embedding_dim": len(item.embedding),
            "embedding": item.embedding,
        }
        for item in embeddings
    ]
    return pd.DataFrame(rows)


def write_table(
    table: pd.DataFrame, out: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Writes a parquet table atomically (temporary file beside it, then rename).

    Raises:
        FileExistsError: When `out` exists and `overwrite` is False.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = pathlib.Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    arrow_table = pa.Table.from_pandas(table, preserve_index=False)
    if "embedding" in table and len(table):
        # float32 list column: what the encoder computes, half the size of float64.
        index = arrow_table.schema.get_field_index("embedding")
        arrow_table = arrow_table.set_column(
            index, "embedding", arrow_table.column("embedding").cast(pa.list_(pa.float32()))
        )
    with _io.atomic_path(out) as temporary:
        pq.write_table(arrow_table, temporary)
