"""eva-compatible transforms that apply a model's preprocessing profile inside eva configs."""

from __future__ import annotations

import functools
from typing import Any

import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.transforms import base
from monai.data.meta_tensor import MetaTensor
from torchvision import tv_tensors
from typing_extensions import override

from eva_coralbay.data.profile import PreprocessingProfile, resolve_profile


class ApplyProfile(base.TorchvisionTransformV2):
    """Reorients, resamples and windows an eva `Volume` and its `Mask` with a model's profile.

    Configs name the model (or give a profile) instead of repeating its numbers, e.g.::

        - class_path: eva_coralbay.data.transforms.ApplyProfile
          init_args:
            profile: radiology/coralbay

    replaces eva's `Spacing` + `ScaleIntensityRange` pair, and adds the reorientation eva leaves
    to its loaders. Inputs are channel-first (`[C, *spatial]`, e.g. after eva's
    `EnsureChannelFirst`); the mask, which carries no affine in eva, is resampled on the
    volume's grid with nearest neighbour, so both leave on one grid. Other inputs pass through.
    """

    def __init__(self, profile: str | PreprocessingProfile = "radiology/coralbay") -> None:
        """Initializes the transform.

        Args:
            profile: A model registry name (see `profile_for_model`) or a profile.
        """
        super().__init__()
        self.profile = resolve_profile(profile)
        self._image_transforms = self.profile.image_transforms()
        self._label_transforms = self.profile.label_transforms()

    @override
    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        volumes = [inpt for inpt in flat_inputs if isinstance(inpt, eva_tv_tensors.Volume)]
        if not volumes:
            if any(isinstance(inpt, tv_tensors.Mask) for inpt in flat_inputs):
                raise ValueError("ApplyProfile resamples a Mask on its Volume's grid: pass both")
            return {"affine": None}
        affine = volumes[0].affine
        if affine is None:
            raise ValueError("ApplyProfile needs the Volume's affine to reorient and resample")
        return {"affine": affine}

    @functools.singledispatchmethod
    @override
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return inpt

    @transform.register(eva_tv_tensors.Volume)
    def _(self, inpt: eva_tv_tensors.Volume, params: dict[str, Any]) -> Any:
        _check_channel_first(inpt)
        # Volume.to_meta_tensor would pass a stale meta["affine"] beside the real one.
        meta = {key: value for key, value in (inpt.metadata or {}).items() if key != "affine"}
        image = MetaTensor(inpt.as_subclass(torch.Tensor), affine=inpt.affine, meta=meta)
        standardised = self._image_transforms(image)
        if not isinstance(standardised, MetaTensor):
            raise TypeError(f"expected MONAI to return a MetaTensor, got {type(standardised)}")
        volume = eva_tv_tensors.Volume.from_meta_tensor(standardised)
        return eva_tv_tensors.Volume(
            volume.as_subclass(torch.Tensor).to(torch.float32),
            affine=volume.affine,
            metadata=volume.metadata,
        )

    @transform.register(tv_tensors.Mask)
    def _(self, inpt: tv_tensors.Mask, params: dict[str, Any]) -> Any:
        _check_channel_first(inpt)
        labels = MetaTensor(inpt.as_subclass(torch.Tensor), affine=params["affine"])
        resampled = self._label_transforms(labels)
        if not isinstance(resampled, MetaTensor):
            raise TypeError(f"expected MONAI to return a MetaTensor, got {type(resampled)}")
        return tv_tensors.Mask(resampled.as_tensor().round().to(torch.long))


def _check_channel_first(inpt: torch.Tensor) -> None:
    """Rejects tensors that are not `[C, X, Y, Z]`, naming the fix."""
    if inpt.ndim != 4:
        raise ValueError(
            f"ApplyProfile expects channel-first 3D tensors [C, X, Y, Z], got shape "
            f"{tuple(inpt.shape)}: put eva's EnsureChannelFirst before it"
        )
