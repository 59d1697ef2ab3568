"""Real TotalSegmentator scans through the TotalSegmentatorV2 adapter, in its native layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eva_coralbay.data import adapters
from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.data.readers import read_label, read_scan
from eva_coralbay.data.synthetic import layouts
from tests.data.adapter_fixtures import isolated_cache, load_nifti

__all__ = ["isolated_cache"]  # a fixture: imported to be used


@pytest.fixture(scope="module")
def real_layout(tmp_path_factory: pytest.TempPathFactory, totalsegmentator_dir: Path) -> Path:
    """s0000 = scan A (whole volume), s0001 = its 30-slice crop; CTs are symlinks to the real files.

    The release ships one binary mask per class; the reference label maps here are multi-label
    files, so the masks are derived from them (117 small files per subject).
    """
    root = tmp_path_factory.mktemp("totalsegmentator")
    subjects = {
        "s0000": ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
        "s0001": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
    }
    names = adapters.TotalSegmentatorV2.native_classes
    for subject, (ct, seg) in subjects.items():
        (root / subject / "segmentations").mkdir(parents=True)
        (root / subject / "ct.nii.gz").symlink_to(totalsegmentator_dir / ct)
        labels = load_nifti(totalsegmentator_dir / seg)
        values = np.asarray(labels.dataobj)
        for class_id, name in enumerate(names[1:], start=1):
            mask = (values == class_id).astype(np.uint8)
            layouts.save_nifti(
                root / subject / "segmentations" / f"{name}.nii.gz", mask, labels.affine
            )
    layouts.write_meta_csv(root, [("s0000", "train"), ("s0001", "val")])
    return root


def test_real_scans_keep_their_voxels_and_labels(
    real_layout: Path, totalsegmentator_dir: Path
) -> None:
    dataset = adapters.TotalSegmentatorV2(
        str(real_layout), split="train", profile=None, allow_incomplete=True
    )
    dataset.configure()
    dataset.validate()
    volume, mask, metadata = dataset[0]
    assert metadata == {"case_id": "s0000", "split": "train"}
    assert dataset.filename(0) == "s0000/ct.nii.gz"

    reference = load_nifti(totalsegmentator_dir / "example_ct.nii.gz")
    np.testing.assert_array_equal(volume[0].numpy(), reference.get_fdata(dtype=np.float32))
    # The 117 masks merge back into the released multi-label map, ids unchanged.
    labels = np.asarray(
        load_nifti(totalsegmentator_dir / "example_seg_fast_force_split.nii.gz").dataobj
    )
    np.testing.assert_array_equal(mask[0].numpy(), labels)
    liver = dataset.class_to_idx["liver"]
    assert (mask == liver).sum() > 1000


def test_real_scan_is_standardised_with_coralbays_profile(
    real_layout: Path, totalsegmentator_dir: Path
) -> None:
    dataset = adapters.TotalSegmentatorV2(
        str(real_layout), split="val", profile="radiology/coralbay", allow_incomplete=True
    )
    dataset.configure()
    standard = dataset.load_standard(0)

    # Oracle: the data core's reader and CoralBay's profile applied to the released files.
    image = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")
    label = read_label(totalsegmentator_dir / "example_seg.nii.gz", reference=image)
    expected_image, expected_label = CORALBAY_PROFILE.apply(image, label)
    assert expected_label is not None
    np.testing.assert_array_equal(standard.image, expected_image[0].numpy())
    np.testing.assert_array_equal(standard.label, expected_label[0].numpy())
    np.testing.assert_allclose(np.linalg.norm(standard.affine[:3, :3], axis=0), [1.5, 1.5, 1.5])
    assert standard.image.min() >= 0.0 and standard.image.max() <= 1.0
