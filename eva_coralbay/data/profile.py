"""Preprocessing profiles: the one definition of how a model wants its CT standardised."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from eva_coralbay.models import preprocessing
from eva_coralbay.models.architecture import EncoderConfig

if TYPE_CHECKING:
    from monai.data.meta_tensor import MetaTensor
    from monai.transforms.compose import Compose

PROFILE_SCHEMA_VERSION = 1
"""Bumped when the meaning of a profile field changes, so that old caches are invalidated."""

_AXIS_LETTERS = ({"L", "R"}, {"A", "P"}, {"I", "S"})
_IMAGE_MODES = {"bilinear": "bilinear", "trilinear": "bilinear", "nearest": "nearest"}


@dataclasses.dataclass(frozen=True)
class PreprocessingProfile:
    """How a model expects a CT scan: orientation, voxel spacing and intensity window.

    The same object builds the transforms of eva configs (`ApplyProfile`), of pretraining crops
    and of `coralbay embed`, so a model's preprocessing is declared once. Applying a profile
    reorients to `orientation`, resamples to `spacing` (image with `image_interpolation`, labels
    always with nearest neighbour), clips Hounsfield units to `intensity_range` and maps that
    window linearly onto `output_range`.
    """

    orientation: str = "RAS"
    """Axis codes of the output voxel axes (MONAI / nibabel convention: the direction each axis
    increases toward, e.g. RAS = right, anterior, superior)."""

    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)
    """Output voxel spacing in millimetres along the three output axes."""

    intensity_range: tuple[float, float] = (-1000.0, 1000.0)
    """The Hounsfield-unit window [low, high]; values outside are clipped when `clip` is set."""

    output_range: tuple[float, float] = (0.0, 1.0)
    """What `intensity_range` is scaled onto."""

    clip: bool = True
    """Whether intensities are clipped to `output_range` after scaling."""

    image_interpolation: str = "bilinear"
    """Image resampling: "bilinear" (trilinear in 3D; "trilinear" is accepted as an alias) or
    "nearest"."""

    label_interpolation: str = "nearest"
    """Label resampling; only "nearest" keeps label values intact."""

    def __post_init__(self) -> None:
        """Normalises numbers to floats and rejects profiles MONAI would misapply."""
        orientation = str(self.orientation).upper()
        if len(orientation) != 3 or any(
            sum(letter in axis for letter in orientation) != 1 for axis in _AXIS_LETTERS
        ):
            raise ValueError(
                f"orientation must name one of L/R, one of A/P and one of I/S (e.g. 'RAS'), "
                f"got {self.orientation!r}"
            )
        spacing = _float_tuple(self.spacing, 3, "spacing")
        if not all(value > 0 for value in spacing):
            raise ValueError(f"spacing must be positive millimetres, got {self.spacing!r}")
        intensity_range = _float_tuple(self.intensity_range, 2, "intensity_range")
        if not intensity_range[0] < intensity_range[1]:
            raise ValueError(f"intensity_range must be [low, high], got {self.intensity_range!r}")
        output_range = _float_tuple(self.output_range, 2, "output_range")
        if output_range[0] == output_range[1]:
            raise ValueError(f"output_range must span an interval, got {self.output_range!r}")
        image_mode = _IMAGE_MODES.get(str(self.image_interpolation).lower())
        if image_mode is None:
            raise ValueError(
                f"image_interpolation must be one of {sorted(_IMAGE_MODES)}, "
                f"got {self.image_interpolation!r}"
            )
        if self.label_interpolation != "nearest":
            raise ValueError(
                "label_interpolation must be 'nearest': any other mode blends label ids, "
                f"got {self.label_interpolation!r}"
            )
        object.__setattr__(self, "orientation", orientation)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "intensity_range", intensity_range)
        object.__setattr__(self, "output_range", output_range)
        object.__setattr__(self, "clip", bool(self.clip))
        object.__setattr__(self, "image_interpolation", image_mode)

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON-serialisable form (lists for the tuples)."""
        return {
            "orientation": self.orientation,
            "spacing": list(self.spacing),
            "intensity_range": list(self.intensity_range),
            "output_range": list(self.output_range),
            "clip": self.clip,
            "image_interpolation": self.image_interpolation,
            "label_interpolation": self.label_interpolation,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessingProfile:
        """Builds a profile from `to_dict`'s form; unknown keys are an error, missing ones default.

        Raises:
            ValueError: When a key is unknown or a value invalid.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown preprocessing profile keys {unknown}; known: {sorted(known)}"
            )
        return cls(**dict(values))

    def fingerprint(self) -> str:
        """Returns a short stable digest of everything that changes the standardised voxels.

        Equal profiles give equal fingerprints in every process and on every machine (no Python
        `hash`), so a cache keyed on it is invalidated exactly when the preprocessing changes.
        """
        canonical = json.dumps(
            {"schema": PROFILE_SCHEMA_VERSION, **self.to_dict()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def scale_hu(self, value: float) -> float:
        """The intensity a Hounsfield value becomes under this profile's window and scaling."""
        (in_low, in_high), (out_low, out_high) = self.intensity_range, self.output_range
        scaled = out_low + (value - in_low) * (out_high - out_low) / (in_high - in_low)
        if self.clip:
            scaled = min(max(scaled, min(out_low, out_high)), max(out_low, out_high))
        return float(scaled)

    def image_transforms(self) -> Compose:
        """Returns MONAI array transforms for a channel-first image MetaTensor (affine in meta).

        Orientation, then spacing (image interpolation), then the clipped intensity scaling.
        """
        from monai.transforms.compose import Compose

        return Compose(
            [
                self._orientation(),
                self._spacing(self.image_interpolation),
                self._scale_intensity(),
            ]
        )

    def label_transforms(self) -> Compose:
        """Returns MONAI array transforms for a channel-first label MetaTensor (affine in meta).

        Orientation and nearest-neighbour spacing; the label values are kept, the dtype is not
        (MONAI resamples in float: cast back with `.long()` or use `apply`).
        """
        from monai.transforms.compose import Compose

        return Compose([self._orientation(), self._spacing(self.label_interpolation)])

    def resample(self, image: MetaTensor) -> MetaTensor:
        """Brings a channel-first image to the profile's orientation and spacing, values kept.

        The HU window and scaling are left out, for callers that window the HU themselves:
        every pretraining crop draws its own window around the profile's.
        """
        oriented = self._orientation()(image)
        return cast("MetaTensor", self._spacing(self.image_interpolation)(oriented))

    def dict_transforms(self, image_key: str = "image", label_keys: Sequence[str] = ()) -> Compose:
        """Returns the MONAI dictionary transforms (for `monai.data.Dataset` pipelines).

        Args:
            image_key: The key of the channel-first CT MetaTensor.
            label_keys: Keys of label maps on the same grid, resampled with nearest neighbour.
        """
        from monai.transforms.compose import Compose
        from monai.transforms.intensity.dictionary import ScaleIntensityRanged
        from monai.transforms.spatial.dictionary import Orientationd, Spacingd

        keys = [image_key, *label_keys]
        modes = [self.image_interpolation] + [self.label_interpolation] * len(label_keys)
        return Compose(
            [
                Orientationd(keys=keys, axcodes=self.orientation, labels=None),
                Spacingd(keys=keys, pixdim=self.spacing, mode=modes),
                ScaleIntensityRanged(
                    keys=image_key,
                    a_min=self.intensity_range[0],
                    a_max=self.intensity_range[1],
                    b_min=self.output_range[0],
                    b_max=self.output_range[1],
                    clip=self.clip,
                ),
            ]
        )

    def apply(
        self, image: MetaTensor, label: MetaTensor | None = None
    ) -> tuple[MetaTensor, MetaTensor | None]:
        """Standardises a channel-first image and, on the same grid, its label map.

        Args:
            image: CT in Hounsfield units, shape `[C, X, Y, Z]`, with its affine.
            label: Integer label map of shape `[1, X, Y, Z]` on the image's grid, or None.

        Returns:
            The standardised image (float32) and label map (int64, same shape) or None.
        """
        import torch

        resampled = cast("MetaTensor", self.image_transforms()(image))
        standardised = cast("MetaTensor", resampled.to(torch.float32))
        if label is None:
            return standardised, None
        resampled_label = cast("MetaTensor", self.label_transforms()(label))
        return standardised, cast("MetaTensor", resampled_label.round().to(torch.int64))

    def _orientation(self) -> Any:
        from monai.transforms.spatial.array import Orientation

        # labels=None: the axis letters follow the MetaTensor's space (RAS for our readers).
        return Orientation(axcodes=self.orientation, labels=None)

    def _spacing(self, mode: str) -> Any:
        from monai.transforms.spatial.array import Spacing

        # recompute_affine stays False: in MONAI 1.6 it replaces the output affine by a bare
        # scaling matrix (eva's Spacing sets it and so loses the affine; the voxels are equal).
        return Spacing(pixdim=self.spacing, mode=mode)

    def _scale_intensity(self) -> Any:
        from monai.transforms.intensity.array import ScaleIntensityRange

        return ScaleIntensityRange(
            a_min=self.intensity_range[0],
            a_max=self.intensity_range[1],
            b_min=self.output_range[0],
            b_max=self.output_range[1],
            clip=self.clip,
        )


def _float_tuple(value: Any, length: int, name: str) -> tuple[float, ...]:
    """Returns `value` as a tuple of finite floats; a single number is repeated `length` times."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[Any] = [value] * length
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
    else:
        raise ValueError(f"{name} must be a number or {length} numbers, got {value!r}")
    if len(items) != length:
        raise ValueError(f"{name} must have {length} values, got {value!r}")
    try:
        floats = tuple(float(item) for item in items)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers, got {value!r}") from error
    if not all(math.isfinite(item) for item in floats):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return floats


CORALBAY_PROFILE = PreprocessingProfile.from_dict(preprocessing.CORALBAY)
"""CoralBay's published preprocessing: RAS, 1.5 mm isotropic, HU [-1000, 1000] -> [0, 1]."""

EVA_RADIOLOGY_PROFILE = PreprocessingProfile.from_dict(preprocessing.EVA_RADIOLOGY)
"""What eva's 3D radiology configs give every backbone (`models.preprocessing.EVA_RADIOLOGY`)."""


def profile_for_model(model_name: str) -> PreprocessingProfile:
    """Returns the preprocessing profile a registry entry carries (`models.preprocessing`).

    Args:
        model_name: A backbone registry name, e.g. "radiology/coralbay" or "radiology/voco_b".

    Raises:
        ValueError: For a name without a known profile; the message lists the known names.
    """
    return PreprocessingProfile.from_dict(preprocessing.of_registry_name(model_name))


def profile_of_model(model: object, model_name: str) -> PreprocessingProfile:
    """Returns the profile a built model carries, else the one of the entry it was built from.

    An encoder loaded from an export carries the profile it was pretrained with in its
    `config.json`; that one wins over the registry entry's, so a model pretrained at another
    spacing or window is embedded the way it was trained.

    Args:
        model: The built model; a CoralBay encoder has a `config` (`EncoderConfig`).
        model_name: The registry name it was built from (or that names its profile).

    Raises:
        ValueError: When the model carries no profile and the name has none either, or the
            recorded profile is invalid.
    """
    config = getattr(model, "config", None)
    recorded = config.preprocessing if isinstance(config, EncoderConfig) else None
    if recorded is None:
        return profile_for_model(model_name)
    try:
        return PreprocessingProfile.from_dict(recorded)
    except ValueError as error:
        raise ValueError(f"the model's config.json records an invalid profile: {error}") from error


def resolve_profile(
    profile: str | PreprocessingProfile | Mapping[str, Any],
) -> PreprocessingProfile:
    """Returns a profile from a profile, a model name (see `profile_for_model`) or a mapping.

    Raises:
        ValueError: For an unknown model name or an invalid mapping.
    """
    if isinstance(profile, PreprocessingProfile):
        return profile
    if isinstance(profile, str):
        return profile_for_model(profile)
    if isinstance(profile, Mapping):
        return PreprocessingProfile.from_dict(profile)
    raise ValueError(
        f"a profile must be a PreprocessingProfile, a model name or a mapping, got {profile!r}"
    )
