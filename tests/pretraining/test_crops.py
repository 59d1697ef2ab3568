import pathlib

import numpy as np
import pytest
import torch

from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.pretraining.config import CropConfig
from eva_coralbay.pretraining.crops import MultiCrop
from eva_coralbay.pretraining.dataset import MultiCropDataset
from eva_coralbay.pretraining.scans import ScanError, ScanStore, StoredScan

PROFILE = CORALBAY_PROFILE
NO_JITTER = {
    "flip_prob": 0.0,
    "rot90_prob": 0.0,
    "window_center_jitter": 0.0,
    "window_width_scale": [1.0, 1.0],
    "intensity_scale": 0.0,
    "intensity_shift": 0.0,
    "noise_prob": 0.0,
    "blur_prob": 0.0,
}


def _stored(volume: np.ndarray, stride: int = 4) -> StoredScan:
    cells = np.flatnonzero(volume[::stride, ::stride, ::stride] > -500)
    return StoredScan(pathlib.Path("phantom.nii.gz"), volume, cells, stride)


def _spacing(view: torch.Tensor) -> np.ndarray:
    affine = np.asarray(view.affine)  # type: ignore[attr-defined]
    return np.linalg.norm(affine[:3, :3], axis=0)


@pytest.fixture(scope="module")
def real_scan(totalsegmentator_dir: pathlib.Path) -> StoredScan:
    store = ScanStore([totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"], PROFILE)
    store.prepare()
    return store.stored[0]


def test_multi_crop_gives_two_global_and_n_local_views_of_the_configured_shapes(
    real_scan: StoredScan,
) -> None:
    config = CropConfig(global_size=64, local_size=[32, 32, 64], num_local=3)
    views = MultiCrop(config, PROFILE)(real_scan, np.random.RandomState(0))
    assert len(views["global"]) == 2 and len(views["local"]) == 3
    assert all(view.shape == (1, 64, 64, 64) for view in views["global"])
    assert all(view.shape == (1, 32, 32, 64) for view in views["local"])
    assert all(view.dtype == torch.float32 for view in views["global"] + views["local"])


@pytest.mark.parametrize(("zoom", "spacing"), [(1.0, 1.5), (0.5, 0.75), (1.25, 1.875)])
def test_view_spacing_is_the_profile_spacing_times_the_zoom(
    real_scan: StoredScan, zoom: float, spacing: float
) -> None:
    config = CropConfig(global_size=64, global_zoom=[zoom, zoom], **NO_JITTER)  # type: ignore[arg-type]
    view = MultiCrop(config, PROFILE).view(
        real_scan, MultiCrop(config, PROFILE).global_kind, np.random.RandomState(1)
    )
    assert view.shape == (1, 64, 64, 64)
    np.testing.assert_allclose(_spacing(view), [spacing] * 3, rtol=1e-6)


def test_flips_and_rotations_keep_the_spacing(real_scan: StoredScan) -> None:
    config = CropConfig(global_size=64, global_zoom=[0.5, 0.5], flip_prob=1.0, rot90_prob=1.0)
    multi_crop = MultiCrop(config, PROFILE)
    for seed in range(3):
        view = multi_crop.view(real_scan, multi_crop.global_kind, np.random.RandomState(seed))
        np.testing.assert_allclose(_spacing(view), [0.75] * 3, rtol=1e-6)


def test_hu_window_maps_the_profile_range_to_unit_interval() -> None:
    volume = np.full((64, 64, 64), -1000, dtype=np.int16)
    volume[:, :, 32:] = 0  # half air, half water
    config = CropConfig(global_size=64, global_zoom=[1.0, 1.0], **NO_JITTER)  # type: ignore[arg-type]
    multi_crop = MultiCrop(config, PROFILE)
    view = multi_crop.view(_stored(volume), multi_crop.global_kind, np.random.RandomState(0))
    assert view[0, :, :, :32].max() == 0.0
    torch.testing.assert_close(view[0, :, :, 32:], torch.full((64, 64, 32), 0.5))


def test_random_hu_window_changes_contrast_per_view(real_scan: StoredScan) -> None:
    config = CropConfig(
        global_size=64,
        global_zoom=[1.0, 1.0],
        **{**NO_JITTER, "window_center_jitter": 300.0, "window_width_scale": [0.3, 1.7]},  # type: ignore[arg-type]
    )
    multi_crop = MultiCrop(config, PROFILE)
    spreads = {
        round(float(multi_crop.view(real_scan, multi_crop.global_kind, rng).std()), 4)
        for rng in (np.random.RandomState(seed) for seed in range(4))
    }
    assert len(spreads) == 4


def test_views_are_drawn_around_the_body() -> None:
    volume = np.full((160, 160, 160), -1000, dtype=np.int16)
    volume[120:150, 120:150, 120:150] = 40  # a small body in one corner
    config = CropConfig(global_size=64, global_zoom=[1.0, 1.0], **NO_JITTER)  # type: ignore[arg-type]
    multi_crop = MultiCrop(config, PROFILE)
    scan = _stored(volume)
    for seed in range(20):
        view = multi_crop.view(scan, multi_crop.global_kind, np.random.RandomState(seed))
        assert (view > 0.4).float().mean() > 0.05
    # Uniform positions would mostly miss it: under 2% of the volume is body.
    assert (volume > -500).mean() < 0.02


def _world_centre(view: torch.Tensor) -> np.ndarray:
    affine = np.asarray(view.affine)  # type: ignore[attr-defined]
    return (affine @ np.append((np.asarray(view.shape[1:]) - 1) / 2, 1.0))[:3]


@pytest.mark.parametrize("spread", [0.0, 0.25])
def test_views_of_a_sample_overlap_around_one_anchor(spread: float) -> None:
    volume = np.full((200, 200, 200), -1000, dtype=np.int16)
    volume[60:140, 60:140, 60:140] = 40
    config = CropConfig(global_size=64, local_size=64, num_local=3, view_spread=spread)
    multi_crop = MultiCrop(config, PROFILE)
    scan = _stored(volume)
    anchors = []
    for seed in range(4):
        views = multi_crop(scan, np.random.RandomState(seed))
        centres = np.stack([_world_centre(view) for view in views["global"] + views["local"]])
        # Flips, rotations and resizing keep each view's centre where it was cut.
        extent = np.ptp(centres, axis=0)
        assert (extent <= 2 * spread * 64 * 1.5 + 1.5).all()
        anchors.append(centres.mean(axis=0))
    assert np.ptp(np.stack(anchors), axis=0).max() > 10  # samples move around the body


def test_same_seed_same_views_different_seed_different_views(real_scan: StoredScan) -> None:
    multi_crop = MultiCrop(CropConfig(global_size=64, num_local=1, local_size=64), PROFILE)
    first = multi_crop(real_scan, np.random.RandomState(7))
    again = multi_crop(real_scan, np.random.RandomState(7))
    other = multi_crop(real_scan, np.random.RandomState(8))
    torch.testing.assert_close(first["local"][0], again["local"][0])
    assert not torch.equal(first["global"][0], other["global"][0])


def test_crop_larger_than_the_scan_is_an_error_unless_padded() -> None:
    volume = np.full((80, 80, 40), 40, dtype=np.int16)
    scan = _stored(volume)
    strict = MultiCrop(CropConfig(global_size=64, global_zoom=[1.0, 1.25]), PROFILE)
    with pytest.raises(ScanError, match=r"phantom.nii.gz.*\(80, 80, 40\).*global crop region"):
        strict.view(scan, strict.global_kind, np.random.RandomState(0))
    padded = MultiCrop(
        CropConfig(global_size=64, global_zoom=[1.0, 1.0], pad_to_crop=True, **NO_JITTER),  # type: ignore[arg-type]
        PROFILE,
    )
    view = padded.view(scan, padded.global_kind, np.random.RandomState(0))
    assert view.shape == (1, 64, 64, 64)
    assert (view == 0).any() and (view > 0.5).any()  # air padding around the scan


def test_large_zooms_that_do_not_fit_are_left_out() -> None:
    scan = _stored(np.full((70, 70, 70), 40, dtype=np.int16))
    multi_crop = MultiCrop(CropConfig(global_size=64, global_zoom=[0.8, 1.5], **NO_JITTER), PROFILE)  # type: ignore[arg-type]
    for seed in range(10):
        view = multi_crop.view(scan, multi_crop.global_kind, np.random.RandomState(seed))
        assert _spacing(view).max() <= 1.5 * 70 / 64 + 1e-6


def test_dataset_stacks_views_per_sample(real_scan: StoredScan) -> None:
    store = ScanStore([], PROFILE)
    store.stored = [real_scan]
    config = CropConfig(global_size=64, num_local=2, local_size=[32, 32, 64])
    dataset = MultiCropDataset(store, MultiCrop(config, PROFILE), samples_per_epoch=5)
    sample = dataset[3]
    assert len(dataset) == 5
    assert sample["global_crops"].shape == (2, 1, 64, 64, 64)
    assert sample["local_crops"].shape == (2, 1, 32, 32, 64)
    assert type(sample["global_crops"]) is torch.Tensor
