"""Finds the SwinUNETR encoder inside the key layouts that real checkpoints use."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

CONTAINER_KEYS = (
    "teacher",
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network_weights",
    "module",
    "student",
)
"""Keys under which checkpoints nest their weights, most preferred first.

DINO-style checkpoints hold both a `teacher` and a `student`: the teacher is the model to keep.
"""

ENCODER_ROOTS = {
    "swinViT": "swinViT",
    # The research-contributions SSL pre-training head names the transformer `swin_vit`.
    "swin_vit": "swinViT",
    "encoder1": "encoder1",
    "encoder2": "encoder2",
    "encoder3": "encoder3",
    "encoder4": "encoder4",
    "encoder10": "encoder10",
}
"""First key segments of eva's `SwinUNETREncoder` (and their aliases in other code bases)."""

TRANSFORMER_ROOTS = frozenset(
    ["patch_embed", *(f"layers{stage}" for stage in range(1, 5))]
    + [f"layers{stage}c" for stage in range(1, 5)]
)
"""First key segments of a bare MONAI `SwinTransformer` saved without its `swinViT.` parent."""

KNOWN_HEADS = frozenset(
    {
        # SwinUNETR's decoder and segmentation output; eva's task modules' decoders and heads.
        *(f"decoder{index}" for index in range(1, 6)),
        "out",
        "decoder",
        "classifier",
        # MONAI research-contributions SSL pre-training (rotation, contrastive, reconstruction).
        "rotation_pre",
        "rotation_head",
        "contrastive_pre",
        "contrastive_head",
        "conv",
        # CLIP-driven Universal Model and SuPreM: text-conditioned dynamic segmentation heads.
        "precls_conv",
        "GAP",
        "controller",
        "organ_embedding",
        "text_to_vision",
        # MONAI's Disruptive-Autoencoder SSL weights: the mask token and a final norm.
        "mask_token",
        "norm",
        # DINO / VoCo self-distillation: projection heads, loss centres and the other copy.
        "head",
        "heads",
        "dino_head",
        "ibot_head",
        "student_head",
        "teacher_head",
        "projection_head",
        "projector",
        "predictor",
        "prototypes",
        "center",
        "criterion",
        "loss",
        "dino_loss",
        "ibot_loss",
        "koleo_loss",
        "student",
        "teacher",
    }
)
"""Names of modules that SwinUNETR-family checkpoints carry beside the encoder and that an
encoder does not use; keys under them are dropped (and logged) instead of failing the load."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the encoder; the message names the file."""


@dataclasses.dataclass(frozen=True)
class EncoderWeights:
    """The encoder part of a checkpoint, renamed to eva's `SwinUNETREncoder` keys."""

    state_dict: dict[str, torch.Tensor]
    """Encoder tensors by encoder key, plus unknown keys under their original names."""

    prefix: str
    """The prefix stripped from the encoder keys (for example `module.backbone.`)."""

    dropped_heads: tuple[str, ...]
    """Original keys of known heads and of other encoder copies that were left out."""

    unknown: tuple[str, ...]
    """Original keys that belong neither to the encoder nor to a known head."""


def unwrap_containers(checkpoint: Any, *, origin: str) -> dict[str, torch.Tensor]:
    """Descends into the nested containers of a loaded checkpoint down to its flat state dict.

    Args:
        checkpoint: What `torch.load` or `safetensors` returned.
        origin: The file it came from, for error messages.

    Raises:
        CheckpointError: When no mapping of tensors is found.
    """
    current = checkpoint
    trail: list[str] = []
    while True:
        if not isinstance(current, Mapping):
            where = "/".join(trail) or "the top level"
            raise CheckpointError(
                f"{origin}: expected a mapping of tensors at {where}, "
                f"found {type(current).__name__}"
            )
        tensors = {key: value for key, value in current.items() if isinstance(value, torch.Tensor)}
        if tensors and len(tensors) == len(current):
            return {str(key): value for key, value in tensors.items()}
        container = next(
            (key for key in CONTAINER_KEYS if isinstance(current.get(key), Mapping)), None
        )
        if container is not None:
            trail.append(container)
            current = current[container]
            continue
        if tensors:
            return {str(key): value for key, value in tensors.items()}
        where = "/".join(trail) or "the top level"
        keys = ", ".join(map(str, list(current)[:10]))
        raise CheckpointError(
            f"{origin}: no tensors found at {where} (keys: {keys}); expected a state dict, "
            f"possibly nested under one of {', '.join(CONTAINER_KEYS)}"
        )


def _locate(key: str) -> tuple[str, str] | None:
    """Splits a key into (prefix, encoder key) at its first encoder root, if any."""
    segments = key.split(".")
    for index, segment in enumerate(segments[:-1]):
        prefix = "".join(f"{part}." for part in segments[:index])
        rest = ".".join(segments[index + 1 :])
        if segment in ENCODER_ROOTS:
            return prefix, f"{ENCODER_ROOTS[segment]}.{rest}"
        if segment in TRANSFORMER_ROOTS:
            # MONAI's Disruptive-Autoencoder SSL weights nest each stage once more
            # (`layers1.0.0.blocks...`, see monai.networks.nets.swin_unetr.filter_swinunetr);
            # a MONAI stage never holds an index right under its BasicLayer otherwise.
            if segment.startswith("layers") and rest.startswith("0.0."):
                rest = rest[2:]
            return prefix, f"swinViT.{segment}.{rest}"
    return None


def _preference(prefix: str) -> int:
    """Ranks candidate encoder prefixes: a teacher first, a student last."""
    segments = prefix.split(".")
    if "teacher" in segments:
        return 0
    if "student" in segments:
        return 2
    return 1


def owning_module(key: str, prefix: str) -> str:
    """The module a key outside the encoder belongs to, seen from the encoder's prefix.

    For the prefix `module.backbone.`, `module.backbone.decoder5.conv.weight` belongs to
    `module.backbone.decoder5` and `module.GAP.0.weight` to `module.GAP`.
    """
    segments = key.split(".")
    shared = 0
    for own, chosen in zip(segments, prefix.split(".")[:-1], strict=False):
        if own != chosen:
            break
        shared += 1
    return ".".join(segments[: shared + 1])


def extract_encoder(flat: Mapping[str, torch.Tensor], *, origin: str) -> EncoderWeights:
    """Picks the SwinUNETR encoder out of a flat state dict and renames it to eva's keys.

    Args:
        flat: A flat state dict (see `unwrap_containers`).
        origin: The file it came from, for error messages.

    Raises:
        CheckpointError: When no encoder is found, several are found that cannot be told
            apart, or two keys map to the same encoder key.
    """
    groups: dict[str, dict[str, str]] = {}
    for key in flat:
        located = _locate(key)
        if located is not None:
            prefix, encoder_key = located
            groups.setdefault(prefix, {})
            if encoder_key in groups[prefix]:
                raise CheckpointError(
                    f"{origin}: keys '{groups[prefix][encoder_key]}' and '{key}' both map to "
                    f"the encoder key '{encoder_key}'"
                )
            groups[prefix][encoder_key] = key
    if not groups:
        sample = ", ".join(list(flat)[:8]) or "none"
        raise CheckpointError(
            f"{origin}: no SwinUNETR encoder found: no key contains swinViT., encoder1. or "
            f"patch_embed./layers1. (first keys: {sample}); this is not a SwinUNETR-family "
            "checkpoint"
        )
    best = min(_preference(prefix) for prefix in groups)
    chosen = [prefix for prefix in groups if _preference(prefix) == best]
    if len(chosen) > 1:
        listed = ", ".join(repr(prefix) for prefix in sorted(chosen))
        raise CheckpointError(
            f"{origin}: several encoders found under the prefixes {listed}; cannot tell which "
            "one to load (export the one you want on its own)"
        )
    prefix = chosen[0]
    mapping = groups[prefix]
    state_dict = {encoder_key: flat[key] for encoder_key, key in mapping.items()}
    taken = set(mapping.values())
    dropped: list[str] = []
    unknown: list[str] = []
    for key in flat:
        if key in taken:
            continue
        located = _locate(key)
        if located is not None or owning_module(key, prefix).split(".")[-1] in KNOWN_HEADS:
            dropped.append(key)
        else:
            unknown.append(key)
            state_dict[key] = flat[key]
    return EncoderWeights(
        state_dict=state_dict,
        prefix=prefix,
        dropped_heads=tuple(dropped),
        unknown=tuple(unknown),
    )
