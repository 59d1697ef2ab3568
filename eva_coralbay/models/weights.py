"""Loads CoralBay and SwinUNETR-family weights from any source, strictly, and exports them."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import pickle
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch
from loguru import logger
from torch import nn

from eva_coralbay import _io
from eva_coralbay.models import checkpoint_sources
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.checkpoint_layouts import (
    CheckpointError,
    EncoderWeights,
    extract_encoder,
    owning_module,
    unwrap_containers,
)

if TYPE_CHECKING:
    # MONAI's blocks make the encoder module a 6 s import; exporting or reading weights
    # does not need it.
    from eva_coralbay.models.encoder import CoralBayEncoder

__all__ = [
    "DEFAULT_SOURCE",
    "CheckpointError",
    "infer_config",
    "load_encoder",
    "load_weights_into",
    "read_checkpoint",
    "save_pretrained",
]

DEFAULT_SOURCE = "kaiko-ai/coralbay"
"""Where CoralBay's published weights live (a Hugging Face repo id)."""

_ARCHITECTURE_KWARGS = ("feature_size", "use_v2", "in_channels")
_LISTED_KEYS = 12


@dataclasses.dataclass(frozen=True)
class _Checkpoint:
    weights: EncoderWeights
    config: EncoderConfig | None
    origin: str


def _numpy_scalar_globals() -> list[Any]:
    """Numpy scalar and dtype classes, which many training scripts store (e.g. `best_acc`).

    Rebuilding them only copies bytes into an array scalar: no code of the file's choosing runs.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # pyright: ignore[reportMissingImports]

    dtypes = getattr(np, "dtypes", None)
    dtype_classes = (
        [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
        if dtypes is not None
        else []
    )
    return [scalar, np.dtype, *dtype_classes]


def _is_safetensors(path: pathlib.Path, size: int) -> bool:
    """Whether a file starts like safetensors: a little-endian header length, then `{`.

    The content decides, not the suffix: `.pt` files are sometimes safetensors and vice versa.
    """
    with path.open("rb") as file:
        start = file.read(9)
    if len(start) < 9 or start[8:9] != b"{":
        return False
    return int.from_bytes(start[:8], "little") <= size - 8


def _read_file(path: pathlib.Path) -> Any:
    """Reads a safetensors or torch file without ever executing pickled code."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if _is_safetensors(path, size):
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as error:
            raise CheckpointError(
                f"{path}: cannot read it as safetensors ({error}); the file ({size} bytes) may "
                "be truncated or corrupt"
            ) from error
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        forbidden = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error))))
        if forbidden:
            raise CheckpointError(
                f"{path}: refused to load: the file holds pickled Python objects beyond tensors "
                f"(it references {', '.join(forbidden)}); unpickling them could run code, so "
                "nothing was loaded. If you trust the file, re-save its state dict with "
                "safetensors and load that."
            ) from None
        raise CheckpointError(
            f"{path}: cannot be read safely as a torch checkpoint (nothing was executed); the "
            f"file ({size} bytes) may be truncated or corrupt, or use a pickle feature the "
            f"weights-only loader lacks: {str(error).splitlines()[-3:]}"
        ) from None
    except Exception as error:
        raise CheckpointError(
            f"{path}: cannot read the torch checkpoint ({type(error).__name__}: {error}); the "
            f"file ({size} bytes) may be truncated or corrupt"
        ) from error


def _summarise(keys: tuple[str, ...], prefix: str) -> str:
    """Groups dropped keys by the module they belong to: `module.GAP.* (4 keys)`."""
    groups = collections.Counter(owning_module(key, prefix) for key in keys)
    return ", ".join(
        f"{name}.* ({count} key{'s' if count > 1 else ''})" for name, count in groups.items()
    )


def _infer(weights: EncoderWeights, origin: str) -> EncoderConfig:
    state_dict = weights.state_dict
    patch = state_dict.get("swinViT.patch_embed.proj.weight")
    first_norm = state_dict.get("swinViT.layers1.0.blocks.0.norm1.weight")
    first_conv = state_dict.get("encoder1.layer.conv1.conv.weight")
    if patch is not None:
        if patch.ndim != 5:
            raise CheckpointError(
                f"{origin}: the patch embedding has shape {tuple(patch.shape)}; only 3D "
                "SwinUNETR encoders (a 5D patch embedding kernel) are supported"
            )
        feature_size, in_channels = int(patch.shape[0]), int(patch.shape[1])
    elif first_norm is not None:
        feature_size = int(first_norm.shape[0])
        in_channels = int(first_conv.shape[1]) if first_conv is not None else 1
    else:
        raise CheckpointError(
            f"{origin}: cannot infer the feature size: neither swinViT.patch_embed.proj.weight "
            "nor swinViT.layers1.0.blocks.0.norm1.weight is in the checkpoint"
        )
    use_v2 = any(key.startswith("swinViT.layers1c.") for key in state_dict)
    try:
        return EncoderConfig(feature_size=feature_size, use_v2=use_v2, in_channels=in_channels)
    except ValueError as error:
        raise CheckpointError(f"{origin}: {error}") from error


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> EncoderConfig:
    """Infers the architecture (F, v1/v2, input channels) from the tensors of a checkpoint.

    Args:
        state_dict: An encoder state dict, in eva's key layout or any layout the loader reads.

    Raises:
        CheckpointError: When the tensors are not a SwinUNETR-family 3D encoder.
    """
    origin = "the state dict"
    return _infer(
        extract_encoder(unwrap_containers(state_dict, origin=origin), origin=origin), origin
    )


def _read(source: str | os.PathLike[str], sha256: str | None) -> _Checkpoint:
    local = checkpoint_sources.resolve(source, sha256=sha256)
    origin = str(local.weights)
    flat = unwrap_containers(_read_file(local.weights), origin=origin)
    weights = extract_encoder(flat, origin=origin)
    if weights.prefix:
        logger.info(f"{origin}: encoder found under the prefix '{weights.prefix}'")
    if weights.dropped_heads:
        logger.info(
            f"{origin}: dropped {len(weights.dropped_heads)} keys the encoder does not use: "
            f"{_summarise(weights.dropped_heads, weights.prefix)}"
        )
    config = None
    if local.config is not None:
        try:
            config = EncoderConfig.from_json(local.config)
        except ValueError as error:
            raise CheckpointError(str(error)) from error
        inferred = _infer(weights, origin)
        declared = (config.feature_size, config.use_v2, config.in_channels)
        found = (inferred.feature_size, inferred.use_v2, inferred.in_channels)
        if declared != found:
            raise CheckpointError(
                f"{local.config} declares feature_size={declared[0]}, use_v2={declared[1]}, "
                f"in_channels={declared[2]}, but {origin} holds feature_size={found[0]}, "
                f"use_v2={found[1]}, in_channels={found[2]}"
            )
    return _Checkpoint(weights=weights, config=config, origin=origin)


def read_checkpoint(
    source: str | os.PathLike[str], *, sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], EncoderConfig | None]:
    """Reads a checkpoint and returns its encoder state dict in eva's key layout.

    Containers and prefixes are unwrapped, known heads dropped (and logged); keys the loader
    does not recognise are kept under their original names so that a strict load reports them.

    Args:
        source: A local file or folder, an http(s) URL or a Hugging Face repo id.
        sha256: The expected SHA-256 of the weights file.

    Returns:
        The state dict and the `config.json` beside it (None when the source has none).
    """
    checkpoint = _read(source, sha256)
    return dict(checkpoint.weights.state_dict), checkpoint.config


def _listing(title: str, items: list[str]) -> str:
    shown = "\n".join(f"    {item}" for item in items[:_LISTED_KEYS])
    more = f"\n    ... and {len(items) - _LISTED_KEYS} more" if len(items) > _LISTED_KEYS else ""
    return f"\n  {title} ({len(items)}):\n{shown}{more}"


def _check_fit(module: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> bool:
    """Checks keys and shapes strictly; returns whether only the transformer is provided.

    Raises:
        CheckpointError: One error listing all missing, unexpected and mis-shaped keys.
    """
    expected = module.state_dict()
    provided_encoder = [key for key in state_dict if key in expected]
    transformer_only = bool(provided_encoder) and all(
        key.startswith("swinViT.") for key in provided_encoder
    )
    missing = [
        key
        for key in expected
        if key not in state_dict and (key.startswith("swinViT.") or not transformer_only)
    ]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(tensor.shape)
    ]
    if missing or unexpected or mismatched:
        message = f"{origin}: the checkpoint does not fit {_describe(module)}:"
        if missing:
            message += _listing("missing keys", missing)
        if unexpected:
            message += _listing("unexpected keys", unexpected)
        if mismatched:
            message += _listing("shape mismatches", mismatched)
        raise CheckpointError(message)
    return transformer_only


def _describe(module: nn.Module) -> str:
    feature_size = getattr(module, "feature_size", getattr(module, "_feature_size", None))
    use_v2 = getattr(module, "use_v2", getattr(module, "_use_v2", None))
    if feature_size is None:
        return type(module).__name__
    return f"{type(module).__name__}(feature_size={feature_size}, use_v2={use_v2})"


def _load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    transformer_only = _check_fit(module, state_dict, origin)
    module.load_state_dict(dict(state_dict), strict=not transformer_only)
    if transformer_only:
        logger.warning(
            f"{origin} holds only the Swin transformer (swinViT): it was loaded, but the conv "
            "blocks encoder1, encoder2, encoder3, encoder4 and encoder10 STAY AT THEIR RANDOM "
            "INITIALISATION; their features are untrained"
        )
    logger.info(f"Loaded {origin} into {_describe(module)}")


def load_weights_into(
    module: nn.Module, source: str | os.PathLike[str], *, sha256: str | None = None
) -> None:
    """Loads a checkpoint strictly into an existing encoder (CoralBay or eva's SwinUNETREncoder).

    Args:
        module: The encoder; its state dict keys are eva's `SwinUNETREncoder` keys.
        source: A local file or folder, an http(s) URL or a Hugging Face repo id.
        sha256: The expected SHA-256 of the weights file.

    Raises:
        CheckpointError: When the checkpoint cannot be read or does not fit the module.
    """
    checkpoint = _read(source, sha256)
    _load_strict(module, checkpoint.weights.state_dict, checkpoint.origin)


def _build_encoder(config: EncoderConfig, **encoder_kwargs: Any) -> CoralBayEncoder:
    from eva_coralbay.models.encoder import CoralBayEncoder

    return CoralBayEncoder.from_config(config, **encoder_kwargs)


def load_encoder(
    source: str | os.PathLike[str] = DEFAULT_SOURCE,
    *,
    sha256: str | None = None,
    **encoder_kwargs: Any,
) -> CoralBayEncoder:
    """Builds a CoralBay encoder shaped like the checkpoint and loads it strictly.

    Args:
        source: A local file or folder, an http(s) URL or a Hugging Face repo id; CoralBay's
            published weights by default. Any SwinUNETR-family checkpoint works.
        sha256: The expected SHA-256 of the weights file.
        **encoder_kwargs: Passed to the encoder (`out_indices`, `inferer`, `embeddings_type`).
            `feature_size`, `use_v2` and `in_channels` come from the checkpoint; giving them is
            allowed only when they agree with it.

    Raises:
        CheckpointError: When the checkpoint cannot be read, disagrees with the requested
            architecture or does not fit the encoder.
    """
    checkpoint = _read(source, sha256)
    config = checkpoint.config or _infer(checkpoint.weights, checkpoint.origin)
    for name in _ARCHITECTURE_KWARGS:
        if name in encoder_kwargs:
            requested = encoder_kwargs.pop(name)
            if requested != getattr(config, name):
                raise CheckpointError(
                    f"{checkpoint.origin} holds an encoder with {name}={getattr(config, name)!r},"
                    f" but {name}={requested!r} was requested"
                )
    encoder = _build_encoder(config, **encoder_kwargs)
    _load_strict(encoder, checkpoint.weights.state_dict, checkpoint.origin)
    return encoder


def _plain_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Own, contiguous CPU copies: safetensors refuses tensors that share storage.
    return {
        key: value.detach().to("cpu", copy=True).contiguous() for key, value in state_dict.items()
    }


def _same_export(
    weights_path: pathlib.Path,
    config_path: pathlib.Path,
    tensors: Mapping[str, torch.Tensor],
    config: EncoderConfig,
) -> bool:
    if not (weights_path.is_file() and config_path.is_file()):
        return False
    try:
        existing_config = json.loads(config_path.read_text())
        existing = safetensors.torch.load_file(str(weights_path))
    except (ValueError, OSError, safetensors.SafetensorError):
        return False
    if existing_config != json.loads(json.dumps(config.to_dict())):
        return False
    return existing.keys() == tensors.keys() and all(
        existing[key].dtype == value.dtype and torch.equal(existing[key], value)
        for key, value in tensors.items()
    )


def save_pretrained(
    module_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    directory: str | os.PathLike[str],
    config: EncoderConfig,
    *,
    overwrite: bool = False,
) -> pathlib.Path:
    """Exports an encoder as a Hugging Face style folder: `model.safetensors` + `config.json`.

    The weights are checked against an encoder built from `config` first, and both files are
    written atomically (temporary file in the folder, then rename).

    Args:
        module_or_state_dict: The encoder, or its state dict in any layout the loader reads
            (for example a DINO module's `teacher.backbone.` keys).
        directory: The folder to write; created when missing.
        config: The architecture written as `config.json`.
        overwrite: Replace an existing, different export in `directory`.

    Returns:
        The folder.

    Raises:
        CheckpointError: When the weights do not fit `config`.
        FileExistsError: When the folder holds a different export and `overwrite` is False.
    """
    directory = pathlib.Path(directory)
    raw = (
        module_or_state_dict.state_dict()
        if isinstance(module_or_state_dict, nn.Module)
        else module_or_state_dict
    )
    origin = f"export to {directory}"
    weights = extract_encoder(unwrap_containers(raw, origin=origin), origin=origin)
    reference = _build_encoder(config)
    if _check_fit(reference, weights.state_dict, origin):
        raise CheckpointError(
            f"{origin}: the weights hold only the Swin transformer; an export needs the conv "
            "blocks (encoder1-4, encoder10) too"
        )
    tensors = _plain_tensors(weights.state_dict)
    weights_path = directory / checkpoint_sources.WEIGHTS_FILENAME
    config_path = directory / checkpoint_sources.CONFIG_FILENAME
    if weights_path.exists() or config_path.exists():
        if _same_export(weights_path, config_path, tensors, config):
            logger.info(f"{directory} already holds this export; nothing written")
            return directory
        if not overwrite:
            raise FileExistsError(
                f"{directory} already holds a different export ({weights_path.name}, "
                f"{config_path.name}); pass overwrite=True to replace it"
            )
    # Both files are written before either replaces its old copy.
    with _io.atomic_path(config_path) as config_tmp, _io.atomic_path(weights_path) as weights_tmp:
        safetensors.torch.save_file(tensors, str(weights_tmp), metadata={"format": "pt"})
        config_tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    logger.info(f"Exported {len(tensors)} tensors and {config_path.name} to {directory}")
    return directory
