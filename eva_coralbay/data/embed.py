"""Whole-scan embedding: standardise with the profile, slide windows, pool as windows stream."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import math
import os
import pathlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from eva_coralbay import _io
from eva_coralbay.data.profile import PreprocessingProfile

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from monai.data.meta_tensor import MetaTensor
    from torch import nn

DEFAULT_ROI_SIZE = 96
"""Window edge in voxels: CoralBay's pretraining crop (a multiple of the encoder's 32)."""

DEFAULT_OVERLAP = 0.5
"""Fraction by which neighbouring windows overlap."""

PROVENANCE_KEYS = (
    "model",
    "checkpoint_hash",
    "profile_fingerprint",
    "roi_size",
    "overlap",
    "precision",
)
"""What must agree for embeddings to share a table: the model, its weights, the profile, the
windows and the precision (bf16 rows differ from float32 ones by about 1%)."""

PROVENANCE_METADATA_KEY = b"coralbay_embed"
"""The parquet schema metadata entry holding a table's provenance (JSON)."""


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

    content_hash: str = ""
    """SHA-256 of the scan's bytes (`scans.content_hash`: a DICOM folder hashes its files)."""


@dataclasses.dataclass(frozen=True)
class WindowGrid:
    """Where MONAI's `SlidingWindowInferer` puts its windows on one volume, axis by axis.

    The windows are the Cartesian product of each axis's start positions (MONAI's
    `dense_patch_slices`), on the volume padded up to one window where it is smaller.
    """

    shape: tuple[int, ...]
    """Voxels of the volume before padding."""

    roi_size: tuple[int, ...]
    """Window size in voxels."""

    pad: tuple[tuple[int, int], ...]
    """Voxels of padding (before, after) per axis: half each side, as MONAI pads."""

    starts: tuple[tuple[int, ...], ...]
    """Window start positions per axis, on the padded volume."""

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Voxels of the volume after padding."""
        return tuple(max(size, roi) for size, roi in zip(self.shape, self.roi_size, strict=True))

    def windows(self) -> list[tuple[int, ...]]:
        """Every window's start corner, in MONAI's order."""
        return list(itertools.product(*self.starts))

    def axis_weights(self, axis: int, window_output: int) -> tuple[torch.Tensor, list[int]]:
        """Per-position weights of the stitched map along one axis, and each window's offset.

        A map whose windows are `window_output` long along `axis` is stitched by MONAI at scale
        z = window_output / roi onto `int(padded · z)` positions, window k covering
        `[int(start_k · z), int((start_k + roi) · z))`; each position is the mean of the windows
        covering it, and the padding is cropped off afterwards. Constant blending makes the
        window count separable (a product of per-axis counts), so the stitched map's global
        mean is Σ_windows Σ_positions f · Π_axes weight / N with weight = 1 / count inside the
        crop and 0 outside, N the cropped size: no full-resolution map is needed.

        Returns:
            The weights (float64, divided by the cropped length so the product over axes
            averages) and the offset of each window start (in `starts[axis]` order).
        """
        import torch

        roi, padded = self.roi_size[axis], self.padded_shape[axis]
        scale = window_output / float(roi)
        length = int(padded * scale)
        counts = torch.zeros(length, dtype=torch.float64)
        offsets = []
        for start in self.starts[axis]:
            begin, end = int(start * scale), int((start + roi) * scale)
            if end - begin != window_output:
                raise ValueError(
                    f"windows of {roi} voxels give maps of {window_output} along axis {axis}; "
                    f"the stitched grid would need {end - begin} (roi_size and overlap must "
                    "keep the window starts on every map's grid)"
                )
            counts[begin:end] += 1
            offsets.append(begin)
        before = self.pad[axis][0]
        if before or self.pad[axis][1]:
            # MONAI crops its padding at each map's own scale, rounding (not truncating).
            low, high = round(before * scale), round((before + self.shape[axis]) * scale)
            if high <= low:
                # MONAI's crop is empty here (a scan under half a cell of a coarse map): its
                # mean would be NaN. The cells the scan overlaps stand in for it instead.
                low = math.floor(before * scale)
                high = math.ceil((before + self.shape[axis]) * scale)
        else:
            low, high = 0, length
        weights = torch.zeros(length, dtype=torch.float64)
        weights[low:high] = 1.0 / counts[low:high] / (high - low)
        return weights, offsets


def window_grid(
    shape: Sequence[int], roi_size: int | Sequence[int], overlap: float = DEFAULT_OVERLAP
) -> WindowGrid:
    """The sliding-window layout MONAI's inferer uses for a volume of `shape`.

    Raises:
        ValueError: When a window size is not a positive multiple of 32 or the overlap is
            outside [0, 1).
    """
    from monai.data.utils import dense_patch_slices

    sizes = tuple([roi_size] * 3 if isinstance(roi_size, int) else roi_size)
    if len(sizes) != 3 or any(size <= 0 or size % 32 for size in sizes):
        raise ValueError(f"roi_size must be 3 positive multiples of 32, got {roi_size!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
    shape = tuple(int(size) for size in shape)
    pad = tuple(
        ((roi - size) // 2, roi - size - (roi - size) // 2) if size < roi else (0, 0)
        for size, roi in zip(shape, sizes, strict=True)
    )
    padded = tuple(max(size, roi) for size, roi in zip(shape, sizes, strict=True))
    # MONAI's _get_scan_interval: a window as large as the volume does not step.
    interval = tuple(
        roi if roi == size else max(int(roi * (1 - overlap)), 1)
        for size, roi in zip(padded, sizes, strict=True)
    )
    # return_slice=False gives (start, stop) pairs, whatever the annotation says.
    corners: Any = dense_patch_slices(padded, sizes, interval, return_slice=False)
    starts = tuple(tuple(sorted({int(corner[axis][0]) for corner in corners})) for axis in range(3))
    return WindowGrid(shape=shape, roi_size=sizes, pad=pad, starts=starts)


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


def multiscale_pooling(encoder: nn.Module) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """The encoder's pooling of its feature maps into the multi-scale embedding.

    CoralBay calls it `forward_multiscale`; eva's SwinUNETR-family backbones (VoCo, SuPreM, the
    Universal Model) `forward_encoders`. Both average each map and concatenate.

    Raises:
        TypeError: When the encoder has no `forward_features` or neither pooling method.
    """
    if not callable(getattr(encoder, "forward_features", None)):
        raise TypeError(
            f"{type(encoder).__name__} has no forward_features: whole-scan embedding needs an "
            "encoder that returns its feature maps (a SwinUNETR-style backbone)"
        )
    for name in ("forward_multiscale", "forward_encoders"):
        method = getattr(encoder, name, None)
        if callable(method):
            return cast("Callable[[list[torch.Tensor]], torch.Tensor]", method)
    raise TypeError(
        f"{type(encoder).__name__} has neither forward_multiscale nor forward_encoders to pool "
        "its feature maps into a multi-scale embedding"
    )


def embed_volume(
    encoder: nn.Module,
    volume: torch.Tensor,
    *,
    roi_size: int | Sequence[int] = DEFAULT_ROI_SIZE,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = 2,
    pad_value: float = 0.0,
    precision: str = "fp32",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Embeds one standardised volume, pooling each batch of windows as it comes.

    The result is what MONAI's `SlidingWindowInferer` (constant blending) followed by the
    encoder's `forward_multiscale` gives: the global average of each stitched feature map. The
    stitched maps are never built; each window's maps are reduced to one weighted sum per
    channel (`WindowGrid.axis_weights`), so memory is one batch of windows, whatever the scan.

    Args:
        encoder: A SwinUNETR-style encoder with `forward_features` (six maps) and a pooling
            of them into the multi-scale vector (`multiscale_pooling`), built without its own
            inferer.
        volume: The standardised scan, `[1, X, Y, Z]`, on the CPU.
        roi_size: Window size in voxels; each a multiple of 32.
        overlap: Fraction of a window shared with its neighbour, in [0, 1).
        sw_batch_size: Windows per encoder call.
        pad_value: Fill for volumes smaller than a window (air in the profile's output range).
        precision: "fp32", or "bf16" / "fp16" to run each window under autocast (fp16: CUDA
            only); the pooling stays float32 either way.
        device: Where the windows run; the encoder's own device by default.

    Returns:
        The multi-scale embedding, shape `[24·F]`, float32 on the CPU.

    Raises:
        ValueError: For a bad window size, overlap, batch size or precision.
        TypeError: For an encoder without feature maps or their pooling.
    """
    import torch
    import torch.nn.functional as F

    dtype = autocast_dtype(precision)
    if sw_batch_size < 1:
        raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}")
    pool = multiscale_pooling(encoder)
    multiscale: Any = encoder.eval()  # forward_features
    target = torch.device(device) if device is not None else next(encoder.parameters()).device
    grid = window_grid(volume.shape[1:], roi_size, overlap)
    padding = [amount for axis in reversed(range(3)) for amount in grid.pad[axis]]
    padded = volume.as_subclass(torch.Tensor)[None]
    if any(padding):
        padded = F.pad(padded, padding, mode="constant", value=pad_value)
    windows = grid.windows()
    roi = grid.roi_size
    # Per map, per axis: the weights (on the device) and each window start's offset into them.
    weights: list[list[tuple[torch.Tensor, dict[int, int]]]] = []
    sums: list[torch.Tensor] = []
    with torch.inference_mode():
        for first in range(0, len(windows), sw_batch_size):
            batch = windows[first : first + sw_batch_size]
            crops = torch.cat(
                [padded[:, :, x : x + roi[0], y : y + roi[1], z : z + roi[2]] for x, y, z in batch]
            ).to(target)
            with torch.autocast(target.type, dtype=dtype, enabled=dtype is not None):
                maps = multiscale.forward_features(crops)
            if not weights:
                for feature_map in maps:
                    per_axis = []
                    for axis in range(3):
                        axis_weights, offsets = grid.axis_weights(axis, feature_map.shape[2 + axis])
                        per_axis.append(
                            (
                                axis_weights.to(target, torch.float32),
                                dict(zip(grid.starts[axis], offsets, strict=True)),
                            )
                        )
                    weights.append(per_axis)
                sums = [torch.zeros(m.shape[1], dtype=torch.float64, device=target) for m in maps]
            for index, feature_map in enumerate(maps):
                sums[index] += _weighted_sum(feature_map.float(), batch, weights[index])
            # Freed before the next batch runs, or two batches of maps would be held at once.
            del maps, crops
        means = [total.float()[None, :, None, None, None] for total in sums]
        # Pooling 1x1x1 maps is the identity: the encoder still picks and orders the scales.
        pooled = pool(means)
    return pooled[0].float().cpu()


def _weighted_sum(
    feature_map: torch.Tensor,
    corners: Sequence[tuple[int, ...]],
    weights: Sequence[tuple[torch.Tensor, dict[int, int]]],
) -> torch.Tensor:
    """Σ over windows and positions of map · w_x · w_y · w_z, per channel (float64)."""
    import torch

    batch, channels, *sizes = feature_map.shape
    per_axis = [
        torch.stack(
            [
                axis_weights[offsets[corner[axis]] : offsets[corner[axis]] + sizes[axis]]
                for corner in corners
            ]
        )
        for axis, (axis_weights, offsets) in enumerate(weights)
    ]
    # Outermost axis first: a weighted sum of contiguous (y, z) planes streams through the map
    # once and vectorises (about 3x faster than mat-vecs along z); what is left is small.
    x_size, y_size, z_size = sizes
    planes = torch.matmul(
        per_axis[0][:, None, None, :], feature_map.reshape(batch, channels, x_size, -1)
    )
    rows = torch.matmul(
        planes.reshape(batch, channels, y_size, z_size), per_axis[2][:, None, :, None]
    )
    reduced = rows.reshape(batch, channels, y_size) * per_axis[1][:, None, :]
    return reduced.sum(dim=(0, 2)).double()


def load_model(
    model: str,
    checkpoint: str | os.PathLike[str] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Builds the encoder to embed with.

    Args:
        model: A backbone registry name (ours or eva's), e.g. "radiology/coralbay".
        checkpoint: Weights to load instead of the model's own (any SwinUNETR-family
            checkpoint: file, folder, URL or Hugging Face id); `model` then only names the
            preprocessing profile.
        model_kwargs: Keyword arguments of the registry model (`{"feature_size": 12}`).

    Raises:
        ValueError: For keyword arguments with a checkpoint, which carries its architecture.
    """
    if checkpoint is not None:
        if model_kwargs:
            raise ValueError(
                f"model keyword arguments {dict(model_kwargs)} with checkpoint {checkpoint}: a "
                "checkpoint carries its own architecture"
            )
        from eva_coralbay.models.weights import load_encoder

        return load_encoder(checkpoint)
    from eva.vision.models.networks.backbones import backbone_registry

    from eva_coralbay.models.registry import register_models

    register_models()
    return backbone_registry.get(model)(**(model_kwargs or {}))


def weights_hash(encoder: nn.Module) -> str:
    """SHA-256 of the encoder's weights as loaded: names, dtypes, shapes and bytes, in order.

    Identifies the weights whatever their source (file, folder, URL, Hub id, registry), so a
    table can tell whether its rows came from the same checkpoint.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class PreparedScan:
    """A scan read, hashed and standardised, ready for the encoder."""

    scan: str
    source_shape: list[int]
    source_spacing: list[float]
    content_hash: str
    volume: MetaTensor


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
        precision: str = "fp32",
    ) -> None:
        """Prepares the encoder and checks the window settings.

        Args:
            encoder: See `embed_volume`.
            profile: How scans are standardised before embedding.
            roi_size: Window size in voxels (multiples of 32).
            overlap: Fraction of overlap between neighbouring windows.
            sw_batch_size: Windows per encoder call.
            device: Where the encoder runs; CUDA when available, else CPU, by default.
            precision: "fp32", "bf16" or "fp16" (CUDA), see `embed_volume`.

        Raises:
            ValueError: For a bad window size, overlap, batch size or precision, before any
                scan is read.
        """
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = encoder.to(self.device).eval()
        self.profile = profile
        self.roi_size = [roi_size] * 3 if isinstance(roi_size, int) else list(roi_size)
        self.overlap = overlap
        window_grid(self.roi_size, self.roi_size, overlap)  # bad settings fail here
        autocast_dtype(precision)
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}")
        self.sw_batch_size = sw_batch_size
        self.precision = precision

    def prepare(self, scan: str | os.PathLike[str]) -> PreparedScan:
        """Reads, hashes and standardises one scan (what the prefetch thread does).

        Raises:
            ScanReadError: When the scan cannot be read.
        """
        from eva_coralbay.data.readers import ScanReadError, read_scan
        from eva_coralbay.data.scans import content_hash

        source = read_scan(scan)
        try:
            digest = content_hash(scan)
        except OSError as error:
            raise ScanReadError(scan, f"cannot hash its files ({error})") from error
        standardised, _ = self.profile.apply(source)
        return PreparedScan(
            scan=str(scan),
            source_shape=[int(size) for size in source.shape[1:]],
            source_spacing=[float(value) for value in source.meta["spacing"]],
            content_hash=digest,
            volume=standardised,
        )

    def embed_prepared(self, prepared: PreparedScan) -> ScanEmbedding:
        """Runs the encoder over a prepared scan."""
        vector = embed_volume(
            self.encoder,
            prepared.volume,
            roi_size=self.roi_size,
            overlap=self.overlap,
            sw_batch_size=self.sw_batch_size,
            # The window's low end is where air lands, clipped or not.
            pad_value=self.profile.output_range[0],
            precision=self.precision,
            device=self.device,
        )
        return ScanEmbedding(
            scan=prepared.scan,
            embedding=vector.tolist(),
            source_shape=prepared.source_shape,
            source_spacing=prepared.source_spacing,
            shape=[int(size) for size in prepared.volume.shape[1:]],
            content_hash=prepared.content_hash,
        )

    def embed(self, scan: str | os.PathLike[str]) -> ScanEmbedding:
        """Reads, standardises and embeds one scan.

        Raises:
            ScanReadError: When the scan cannot be read.
        """
        return self.embed_prepared(self.prepare(scan))

    def embed_many(
        self, scans: Iterable[str | os.PathLike[str]], prefetch: int = 2
    ) -> Iterator[tuple[str, ScanEmbedding | Exception]]:
        """Embeds scans in order while a thread reads and standardises the next ones.

        Args:
            scans: The scans, in the order to embed them.
            prefetch: Scans read ahead of the one being embedded (0: none).

        Yields:
            Each scan's path and its embedding, or the `ScanReadError` that kept it from being
            read (other errors propagate).
        """
        from eva_coralbay.data.readers import ScanReadError

        def prepare(scan: str | os.PathLike[str]) -> PreparedScan | Exception:
            try:
                return self.prepare(scan)
            except ScanReadError as error:
                return error

        # One reader thread: reading and resampling release the GIL, and the encoder keeps the
        # cores; more readers would only hold more standardised volumes in memory.
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        pending: deque[tuple[str, concurrent.futures.Future[PreparedScan | Exception]]] = deque()
        iterator = iter(scans)
        try:
            while True:
                while len(pending) <= prefetch:
                    scan = next(iterator, None)
                    if scan is None:
                        break
                    pending.append((str(scan), executor.submit(prepare, scan)))
                if not pending:
                    return
                scan, future = pending.popleft()
                prepared = future.result()
                if isinstance(prepared, Exception):
                    yield scan, prepared
                else:
                    yield scan, self.embed_prepared(prepared)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def embeddings_table(
    embeddings: Sequence[ScanEmbedding],
    *,
    model: str,
    checkpoint: str | None,
    checkpoint_hash: str,
    profile: PreprocessingProfile,
    roi_size: Sequence[int],
    overlap: float,
    precision: str = "fp32",
) -> pd.DataFrame:
    """One row per scan: provenance columns and the embedding as a list column."""
    import pandas as pd

    rows = [
        {
            "scan": item.scan,
            "content_hash": item.content_hash,
            "model": model,
            "checkpoint": checkpoint,
            "checkpoint_hash": checkpoint_hash,
            "profile_fingerprint": profile.fingerprint(),
            "profile": json.dumps(profile.to_dict(), sort_keys=True),
            "roi_size": list(roi_size),
            "overlap": overlap,
            "precision": precision,
            "source_shape": item.source_shape,
            "source_spacing": item.source_spacing,
            "shape": item.shape,
            "embedding_dim": len(item.embedding),
            "embedding": item.embedding,
        }
        for item in embeddings
    ]
    return pd.DataFrame(rows, columns=_COLUMNS)


_COLUMNS = [
    "scan", "content_hash", "model", "checkpoint", "checkpoint_hash", "profile_fingerprint",
    "profile", "roi_size", "overlap", "precision", "source_shape", "source_spacing", "shape",
    "embedding_dim", "embedding",
]  # fmt: skip


def provenance(
    *,
    model: str,
    checkpoint_hash: str,
    profile: PreprocessingProfile,
    roi_size: Sequence[int],
    overlap: float,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The `PROVENANCE_KEYS` of a table, as stored in its parquet metadata."""
    return {
        "model": model,
        "checkpoint_hash": checkpoint_hash,
        "profile_fingerprint": profile.fingerprint(),
        "roi_size": [int(size) for size in roi_size],
        "overlap": float(overlap),
        "precision": precision,
    }


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance a table was written with (None: a table without one, or not ours).

    Raises:
        OSError: When the file cannot be read as parquet.
    """
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as error:  # pyarrow raises its own ArrowInvalid for a non-parquet file
        raise OSError(f"{path}: cannot read as a parquet table ({error})") from error
    if PROVENANCE_METADATA_KEY not in metadata:
        return None
    return json.loads(metadata[PROVENANCE_METADATA_KEY])


def provenance_differences(expected: dict[str, Any], actual: dict[str, Any] | None) -> list[str]:
    """`key: expected vs actual` for each provenance key on which two tables differ."""
    if actual is None:
        return ["no provenance recorded (not written by this version of coralbay embed)"]
    return [
        f"{key}: {expected.get(key)!r} vs {actual.get(key)!r}"
        for key in PROVENANCE_KEYS
        if expected.get(key) != actual.get(key)
    ]


def write_table(
    table: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    table_provenance: dict[str, Any] | None = None,
) -> None:
    """Writes a parquet table atomically (temporary file beside it, then rename).

    Args:
        table: The rows.
        out: The parquet file.
        overwrite: Whether an existing `out` may be replaced.
        table_provenance: Stored in the schema metadata (see `provenance`), so that even a
            table with no rows says what it was embedded with.

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
    if table_provenance is not None:
        metadata = dict(arrow_table.schema.metadata or {})
        metadata[PROVENANCE_METADATA_KEY] = json.dumps(table_provenance, sort_keys=True).encode()
        arrow_table = arrow_table.replace_schema_metadata(metadata)
    with _io.atomic_path(out) as temporary:
        pq.write_table(arrow_table, temporary)
