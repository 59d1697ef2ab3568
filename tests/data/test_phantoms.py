import numpy as np
import pytest

from eva_coralbay.data.synthetic.phantoms import ORGANS, make_phantom


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom(seed) for seed in range(3)]


def _world_centre(phantom, organ_id: int) -> np.ndarray:
    voxels = np.argwhere(phantom.label == organ_id).mean(axis=0)
    return (phantom.affine @ np.r_[voxels, 1.0])[:3]


def test_same_seed_gives_identical_scan() -> None:
    first, second = make_phantom(7), make_phantom(7)
    assert first.image.tobytes() == second.image.tobytes()
    assert first.label.tobytes() == second.label.tobytes()
    assert not np.array_equal(first.image, make_phantom(8).image)


def test_every_organ_is_present_with_plausible_hu(phantoms) -> None:
    for phantom in phantoms:
        assert phantom.image.dtype == np.int16 and phantom.label.shape == phantom.image.shape
        for organ_id, name in ORGANS.items():
            voxels = phantom.image[phantom.label == organ_id]
            assert voxels.size > 300, name
            assert -60 < np.median(voxels) < 90, name
        assert np.median(phantom.image[0, 0, :]) < -900  # air outside the body


def test_organs_sit_where_they_sit_in_a_patient(phantoms) -> None:
    ids = {name: organ_id for organ_id, name in ORGANS.items()}
    for phantom in phantoms:
        centre = {name: _world_centre(phantom, ids[name]) for name in ORGANS.values()}
        # RAS world: +x is the patient's right, +y anterior, +z superior.
        assert centre["liver"][0] > 0 > centre["spleen"][0]
        assert centre["kidney_right"][0] > 0 > centre["kidney_left"][0]
        assert centre["kidney_right"][2] < centre["liver"][2]
        assert centre["aorta"][1] > centre["kidney_left"][1]


def test_cases_vary_in_size_and_position(phantoms) -> None:
    liver_sizes = [int((p.label == 4).sum()) for p in phantoms]
    assert len(set(liver_sizes)) == len(phantoms)
    assert np.ptp(liver_sizes) / np.mean(liver_sizes) > 0.05
