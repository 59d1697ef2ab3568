"""Training augmentations of the configs that depend on the model's preprocessing profile."""

from __future__ import annotations

from eva.vision.data.transforms import RandRotate90

from eva_coralbay.data.profile import PreprocessingProfile, resolve_profile

_LONGITUDINAL = {"S", "I"}


def axial_axes(orientation: str) -> tuple[int, int]:
    """The two spatial axes of the axial plane for volumes in `orientation` (e.g. RAS -> (0, 1)).

    Raises:
        ValueError: When the orientation does not have exactly one S/I axis.
    """
    axes = [index for index, code in enumerate(orientation.upper()) if code not in _LONGITUDINAL]
    if len(axes) != 2:
        raise ValueError(f"orientation {orientation!r} has no single superior-inferior axis")
    return axes[0], axes[1]


class RandRotate90Axial(RandRotate90):
    """eva's `RandRotate90` in the axial plane, wherever the profile puts it.

    eva's configs rotate the spatial axes (1, 2) because eva's loaders put the superior axis
    first (SPL); a profile that keeps RAS has its axial plane on the axes (0, 1). Naming the
    profile instead of the axes keeps the augmentation the same for every model.
    """

    def __init__(
        self,
        profile: str | PreprocessingProfile = "radiology/coralbay",
        prob: float = 0.1,
        max_k: int = 3,
    ) -> None:
        """Initializes the transform.

        Args:
            profile: A model registry name or a preprocessing profile (see `resolve_profile`).
            prob: The probability of rotating.
            max_k: Rotations are by k * 90 degrees, k drawn from 1..max_k.
        """
        self.profile = resolve_profile(profile)
        super().__init__(prob=prob, max_k=max_k, spatial_axes=axial_axes(self.profile.orientation))
