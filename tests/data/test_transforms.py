import pathlib

import pytest
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from torchvision import tv_tensors
from torchvision.transforms import v2

from eva_coralbay.data.profile import CORALBAY_PROFILE, PreprocessingProfile
from eva_coralbay.data.readers import read_label, read_scan
from eva_coralbay.data.transforms import ApplyProfile


def test_apply_profile_in_an_eva_pipeline_equals_the_profile(
    totalsegmentator_dir: pathlib.Path,
) -> None:
    """eva's own loader ([T, C, H, W] in PLS) and eva's transforms around ApplyProfile.

    Orientation to RAS undoes eva's layout, so the result equals our reader + the profile.
    """
    from eva.vision.data.datasets.segmentation import _utils as eva_segmentation
    from eva.vision.data.transforms import CropForeground, EnsureChannelFirst, SpatialPad

    image_path = totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"
    label_path = totalsegmentator_dir / "aorta_report" / "aorta.nii.gz"
    volume = eva_segmentation.load_volume_tensor(str(image_path))
    mask = eva_segmentation.load_mask_tensor(str(label_path), str(image_path))

    standardise = v2.Compose(
        [EnsureChannelFirst(channel_dim=1), ApplyProfile("radiology/coralbay")]
    )
    eva_volume, eva_mask = standardise(volume, mask)
    assert isinstance(eva_volume, eva_tv_tensors.Volume)
    assert isinstance(eva_mask, tv_tensors.Mask) and eva_mask.dtype == torch.long
    assert eva_volume.affine is not None

    scan = read_scan(image_path)
    expected_image, expected_label = CORALBAY_PROFILE.apply(
        scan, read_label(label_path, reference=scan)
    )
    assert expected_label is not None
    assert eva_volume.shape == expected_image.shape == eva_mask.shape
    torch.testing.assert_close(
        eva_volume.as_subclass(torch.Tensor), expected_image.as_tensor(), atol=1e-5, rtol=0
    )
    assert torch.equal(eva_mask.as_subclass(torch.Tensor), expected_label.as_tensor())
    torch.testing.assert_close(eva_volume.affine.double(), expected_image.affine, atol=1e-3, rtol=0)
    # The aorta is contrast-filled blood: bright in the [-1000, 1000] window.
    assert float(eva_volume[eva_mask == 1].median()) > 0.55

    # eva's later transforms take the standardised pair as they would their own.
    cropped_volume, cropped_mask = v2.Compose(
        [CropForeground(), SpatialPad(spatial_size=[96] * 3)]
    )(eva_volume, eva_mask)
    assert cropped_volume.shape == cropped_mask.shape
    assert all(size >= 96 for size in cropped_volume.shape[1:])


def test_apply_profile_on_volumes_from_our_reader(totalsegmentator_dir: pathlib.Path) -> None:
    scan = read_scan(totalsegmentator_dir / "example_ct_dicom")
    labels = read_label(totalsegmentator_dir / "example_seg_dicom.nii.gz", reference=scan)
    profile = PreprocessingProfile(spacing=(3.0, 3.0, 3.0))
    volume, mask = ApplyProfile(profile)(
        eva_tv_tensors.Volume.from_meta_tensor(scan), tv_tensors.Mask(labels.as_tensor())
    )
    expected_image, expected_label = profile.apply(scan, labels)
    assert expected_label is not None
    torch.testing.assert_close(volume.as_subclass(torch.Tensor), expected_image.as_tensor())
    assert torch.equal(mask.as_subclass(torch.Tensor), expected_label.as_tensor())


def test_apply_profile_rejects_what_it_cannot_place() -> None:
    transform = ApplyProfile()
    with pytest.raises(ValueError, match="EnsureChannelFirst"):
        transform(eva_tv_tensors.Volume(torch.zeros(1, 1, 4, 4, 4), affine=torch.eye(4)))
    with pytest.raises(ValueError, match="affine"):
        transform(eva_tv_tensors.Volume(torch.zeros(1, 4, 4, 4)))
    with pytest.raises(ValueError, match="pass both"):
        transform(tv_tensors.Mask(torch.zeros(1, 4, 4, 4)))
    with pytest.raises(ValueError, match="no preprocessing profile"):
        ApplyProfile("radiology/not_a_model")


@pytest.mark.parametrize(
    ("profile_yaml", "expected"),
    [
        ("radiology/coralbay", CORALBAY_PROFILE),
        (
            "{orientation: LPS, spacing: [2.0, 2.0, 3.0], intensity_range: [-175, 250]}",
            PreprocessingProfile(
                orientation="LPS", spacing=(2.0, 2.0, 3.0), intensity_range=(-175.0, 250.0)
            ),
        ),
    ],
)
def test_apply_profile_from_a_yaml_config(
    profile_yaml: str, expected: PreprocessingProfile
) -> None:
    """jsonargparse, which eva's CLI uses, builds the transform from a config entry."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--transform", type=ApplyProfile)
    config = parser.parse_string(
        "transform:\n"
        "  class_path: eva_coralbay.data.transforms.ApplyProfile\n"
        "  init_args:\n"
        f"    profile: {profile_yaml}\n"
    )
    transform = parser.instantiate(config).transform
    assert isinstance(transform, ApplyProfile)
    assert transform.profile == expected
