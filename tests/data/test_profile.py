import pathlib
import subprocess
import sys
from typing import cast

import numpy as np
import pytest
import torch
from monai.data.meta_tensor import MetaTensor

from eva_coralbay.data.profile import (
    CORALBAY_PROFILE,
    EVA_RADIOLOGY_PROFILE,
    PreprocessingProfile,
    profile_for_model,
    profile_of_model,
    resolve_profile,
)
from eva_coralbay.data.readers import read_label, read_scan
from eva_coralbay.models import preprocessing
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.encoder import CoralBayEncoder


def test_coralbay_profile_is_the_published_card() -> None:
    assert CORALBAY_PROFILE.to_dict() == {
        "orientation": "RAS",
        "spacing": [1.5, 1.5, 1.5],
        "intensity_range": [-1000.0, 1000.0],
        "output_range": [0.0, 1.0],
        "clip": True,
        "image_interpolation": "bilinear",
        "label_interpolation": "nearest",
    }


def test_dict_round_trip_and_normalisation() -> None:
    profile = PreprocessingProfile(
        orientation="las",
        spacing=2,  # type: ignore[arg-type]  # YAML-style input is normalised
        intensity_range=[-100, 200],  # type: ignore[arg-type]
    )
    assert profile.spacing == (2.0, 2.0, 2.0)
    assert profile.orientation == "LAS"
    assert PreprocessingProfile.from_dict(profile.to_dict()) == profile
    # Numbers written as ints or floats, lists or tuples, name the same preprocessing.
    same = PreprocessingProfile(
        orientation="LAS", spacing=(2.0, 2.0, 2.0), intensity_range=(-100.0, 200.0)
    )
    assert same == profile and same.fingerprint() == profile.fingerprint()
    assert PreprocessingProfile(image_interpolation="trilinear") == PreprocessingProfile()


def test_fingerprint_changes_with_every_field_and_is_stable_across_processes() -> None:
    variants = [
        PreprocessingProfile(orientation="LPS"),
        PreprocessingProfile(spacing=(1.5, 1.5, 2.0)),
        PreprocessingProfile(intensity_range=(-1000.0, 1001.0)),
        PreprocessingProfile(output_range=(-1.0, 1.0)),
        PreprocessingProfile(clip=False),
        PreprocessingProfile(image_interpolation="nearest"),
    ]
    fingerprints = {
        CORALBAY_PROFILE.fingerprint(),
        *(variant.fingerprint() for variant in variants),
    }
    assert len(fingerprints) == len(variants) + 1
    code = (
        "from eva_coralbay.data.profile import CORALBAY_PROFILE;"
        "print(CORALBAY_PROFILE.fingerprint())"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    other_process = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PYTHONHASHSEED": "123"},
    )
    assert other_process.stdout.strip() == CORALBAY_PROFILE.fingerprint()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("orientation", "RRS", "orientation"),
        ("orientation", "RA", "orientation"),
        ("spacing", (1.5, 0.0, 1.5), "spacing"),
        ("spacing", (1.5, 1.5), "spacing"),
        ("spacing", (1.5, float("nan"), 1.5), "spacing"),
        ("intensity_range", (100.0, -100.0), "intensity_range"),
        ("output_range", (1.0, 1.0), "output_range"),
        ("image_interpolation", "bicubic", "image_interpolation"),
        ("label_interpolation", "bilinear", "label_interpolation"),
    ],
)
def test_invalid_profiles_are_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PreprocessingProfile(**{field: value})  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="window"):
        PreprocessingProfile.from_dict({"window": [0, 1]})


def test_profile_for_model() -> None:
    assert profile_for_model("radiology/coralbay") == CORALBAY_PROFILE
    assert profile_for_model("radiology/coralbay_random") == CORALBAY_PROFILE
    for name in preprocessing.EVA_RADIOLOGY_MODELS:
        assert profile_for_model(name) == EVA_RADIOLOGY_PROFILE
    with pytest.raises(ValueError, match=r"radiology/unknown.*radiology/coralbay.*voco_b"):
        profile_for_model("radiology/unknown")
    assert resolve_profile("radiology/coralbay") == CORALBAY_PROFILE
    assert resolve_profile({"spacing": [2, 2, 2]}) == PreprocessingProfile(spacing=(2, 2, 2))


def test_every_registry_entry_carries_its_profile() -> None:
    from eva.vision.models.networks.backbones.registry import backbone_registry

    from eva_coralbay.models import registry

    registry.register_models()
    registered = set(backbone_registry.entries())
    assert set(preprocessing.EVA_RADIOLOGY_MODELS) <= registered
    # Every radiology backbone eva registers, and every entry of ours, has a profile.
    radiology = {name for name in registered if name.startswith("radiology/")}
    assert radiology == set(preprocessing.BY_REGISTRY_NAME)
    assert set(registry.ENTRIES) <= set(preprocessing.BY_REGISTRY_NAME)


def test_an_exported_model_carries_its_own_profile() -> None:
    trained_at_2mm = PreprocessingProfile(spacing=(2, 2, 2), intensity_range=(-500, 500))
    exported = CoralBayEncoder.from_config(
        EncoderConfig(feature_size=12, extra={"preprocessing": trained_at_2mm.to_dict()})
    )
    untagged = CoralBayEncoder.from_config(EncoderConfig(feature_size=12))

    assert profile_of_model(exported, "radiology/coralbay") == trained_at_2mm
    assert profile_of_model(untagged, "radiology/coralbay") == CORALBAY_PROFILE
    broken = CoralBayEncoder.from_config(
        EncoderConfig(feature_size=12, extra={"preprocessing": {"window": [0, 1]}})
    )
    with pytest.raises(ValueError, match=r"config\.json records an invalid profile.*window"):
        profile_of_model(broken, "radiology/coralbay")


def test_profile_transforms_match_eva_spacing_and_scaling(
    totalsegmentator_dir: pathlib.Path,
) -> None:
    """eva's own Spacing / ScaleIntensityRange are the oracle for the resampling and the window."""
    from eva.vision.data import tv_tensors as eva_tv_tensors
    from eva.vision.data.transforms import ScaleIntensityRange, Spacing
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    image = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")  # RAS already
    label = read_label(totalsegmentator_dir / "example_seg.nii.gz", reference=image)
    ours, our_label = CORALBAY_PROFILE.apply(image, label)
    assert our_label is not None

    eva_pipeline = v2.Compose(
        [
            Spacing(pixdim=[1.5, 1.5, 1.5]),
            ScaleIntensityRange(input_range=(-1000.0, 1000.0), output_range=(0.0, 1.0)),
        ]
    )
    volume = eva_tv_tensors.Volume(image.as_tensor(), affine=image.affine, metadata={})
    eva_volume, eva_mask = eva_pipeline(volume, tv_tensors.Mask(label.as_tensor()))
    assert ours.shape == eva_volume.shape == eva_mask.shape
    torch.testing.assert_close(ours.as_tensor(), eva_volume.as_subclass(torch.Tensor))
    assert torch.equal(our_label.as_tensor(), eva_mask.as_subclass(torch.Tensor))
    assert float(ours.min()) == 0.0 and float(ours.max()) == 1.0
    # Our affine is the real voxel-to-world map (eva's Spacing loses it on MONAI 1.6).
    expected = image.affine.clone()
    expected[:3, :3] = torch.diag(torch.tensor([1.5, 1.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(ours.affine[:3, :3], expected[:3, :3])
    torch.testing.assert_close(ours.affine[:3, 3], image.affine[:3, 3], atol=1.6, rtol=0)


def test_eva_profile_reproduces_eva_config_pipeline(totalsegmentator_dir: pathlib.Path) -> None:
    """eva's loader (PLS, superior axis first) + its btcv.yaml transforms equal our eva profile."""
    from eva.vision.data.datasets.segmentation import _utils as eva_segmentation
    from eva.vision.data.transforms import EnsureChannelFirst, ScaleIntensityRange, Spacing
    from torchvision.transforms import v2

    # Scan C is LPS: eva's reorientation is not a no-op here.
    path = totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"
    eva_volume = eva_segmentation.load_volume_tensor(str(path))
    eva_pipeline = v2.Compose(
        [
            EnsureChannelFirst(channel_dim=1),
            Spacing(pixdim=[1.5, 1.5, 1.5]),
            ScaleIntensityRange(input_range=(-175.0, 250.0), output_range=(0.0, 1.0)),
        ]
    )
    expected = eva_pipeline(eva_volume).as_subclass(torch.Tensor)
    ours, _ = EVA_RADIOLOGY_PROFILE.apply(read_scan(path))
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours.as_tensor(), expected, atol=1e-5, rtol=0)


def test_dict_transforms_equal_array_transforms(totalsegmentator_dir: pathlib.Path) -> None:
    image = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")
    label = read_label(totalsegmentator_dir / "example_seg.nii.gz", reference=image)
    profile = PreprocessingProfile(orientation="LPS", spacing=(2.0, 2.5, 4.0))
    result = cast(
        "dict[str, MetaTensor]",
        profile.dict_transforms(label_keys=["label"])({"image": image, "label": label}),
    )
    image_out, label_out = profile.apply(image, label)
    assert label_out is not None
    torch.testing.assert_close(result["image"].as_tensor(), image_out.as_tensor())
    assert torch.equal(result["label"].as_tensor().long(), label_out.as_tensor())
    assert set(label_out.unique().tolist()) <= set(label.unique().tolist())
    np.testing.assert_allclose(
        np.linalg.norm(image_out.affine[:3, :3].numpy(), axis=0), [2.0, 2.5, 4.0]
    )


def test_scale_hu_follows_the_window_and_clips() -> None:
    assert CORALBAY_PROFILE.scale_hu(-1000.0) == 0.0
    assert CORALBAY_PROFILE.scale_hu(0.0) == 0.5
    assert CORALBAY_PROFILE.scale_hu(-1500.0) == 0.0  # clipped
    unclipped = PreprocessingProfile(clip=False)
    assert unclipped.scale_hu(-1500.0) == pytest.approx(-0.25)
    # The value the profile's own transforms give that HU.
    image = MetaTensor(torch.full((1, 4, 4, 4), -200.0), affine=torch.eye(4))
    transformed, _ = CORALBAY_PROFILE.apply(image)
    assert float(transformed.flatten()[0]) == pytest.approx(CORALBAY_PROFILE.scale_hu(-200.0))
