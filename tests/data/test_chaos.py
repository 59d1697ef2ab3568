"""CHAOS (CT): per-slice PNG masks land on the voxels their DICOM files' geometry names."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from nibabel import orientations
from PIL import Image

from eva_coralbay.data.adapters import CHAOS
from eva_coralbay.data.synthetic import layouts


def _as_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    transform = orientations.ornt_transform(
        orientations.io_orientation(affine), orientations.axcodes2ornt(("R", "A", "S"))
    )
    return orientations.apply_orientation(array, transform)


@pytest.fixture
def release(tmp_path: pathlib.Path) -> pathlib.Path:
    return layouts.write_chaos(tmp_path / "chaos")


def _dataset(root: pathlib.Path) -> CHAOS:
    dataset = CHAOS(root=str(root), split=None, profile=None, allow_incomplete=True)
    dataset.configure()
    return dataset


def test_masks_line_up_with_the_scan_however_the_series_is_stored(release: pathlib.Path) -> None:
    dataset = _dataset(release)
    assert [case.case_id for case in dataset.cases] == ["ct_01", "ct_02", "ct_08"]
    assert [case.split for case in dataset.cases] == ["train", "train", "val"]
    assert dataset.problems() == []
    # ct_01 as scanners usually store it, ct_02 top slice first, ct_08 with mirrored columns.
    for case in dataset.cases:
        standard = dataset.standardise(case)
        number = int(case.case_id.removeprefix("ct_"))
        image, label, _ = layouts.phantom_arrays(
            number, CHAOS.canonical_classes, layouts.DEFAULT_SHAPE, layouts.DEFAULT_SPACING
        )
        assert label.any()
        np.testing.assert_array_equal(_as_ras(standard.label, standard.affine), label)
        np.testing.assert_allclose(_as_ras(standard.image, standard.affine), image)


def test_a_mask_count_or_size_that_does_not_match_its_series_is_reported(
    release: pathlib.Path,
) -> None:
    case_dir = release / "CHAOS_Train_Sets" / "Train_Sets" / "CT"
    sorted((case_dir / "1" / "Ground").glob("*.png"))[-1].unlink()
    wrong_size = sorted((case_dir / "2" / "Ground").glob("*.png"))[3]
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(wrong_size)

    problems = [str(problem) for problem in _dataset(release).problems()]

    assert any(
        problem.startswith(str(case_dir / "1" / "Ground")) and "27 PNG masks for the 28" in problem
        for problem in problems
    ), problems
    assert any(
        problem.startswith(str(wrong_size)) and "is 7x9 pixels" in problem for problem in problems
    ), problems


def test_a_partial_release_lists_what_is_missing(tmp_path: pathlib.Path) -> None:
    dataset = CHAOS(root=str(tmp_path), split="val", profile=None)
    dataset.configure()
    problems = {str(problem) for problem in dataset.problems()}
    ct_dir = dataset.ct_dir()
    assert problems == {
        f"{ct_dir / str(number) / folder}: missing folder"
        for number in (8, 19, 25, 30)
        for folder in ("DICOM_anon", "Ground")
    }
