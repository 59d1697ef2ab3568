"""validate(): every broken image/label pair is reported at once, each problem naming its file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters import validation
from eva_coralbay.data.adapters.validation import DatasetValidationError
from eva_coralbay.data.synthetic import layouts
from tests.data.adapter_fixtures import fresh_layout, isolated_cache, load_nifti

__all__ = ["isolated_cache"]  # a fixture: imported to be used


def _validation_error(dataset: adapters.SegmentationAdapter) -> DatasetValidationError:
    dataset.configure()
    with pytest.raises(DatasetValidationError) as error:
        dataset.validate()
    return error.value


def test_every_broken_pair_is_reported_in_one_error(tmp_path: Path) -> None:
    root = fresh_layout(adapters.MSDSpleen, tmp_path / "msd")
    task = root / "Task09_Spleen"
    affine = load_nifti(task / "imagesTr/spleen_2.nii.gz").affine

    # spleen_2: label value outside the class map (spleen has labels 0 and 1 only).
    label = load_nifti(task / "labelsTr/spleen_2.nii.gz")
    values = np.array(label.dataobj)
    values[0, 0, 0] = 7
    layouts.save_nifti(task / "labelsTr/spleen_2.nii.gz", values, label.affine)
    # spleen_3: label shifted by 5 mm, on another grid than its image.
    assert affine is not None
    shifted = affine.copy()
    shifted[:3, 3] += 5.0
    label3 = load_nifti(task / "labelsTr/spleen_3.nii.gz")
    layouts.save_nifti(task / "labelsTr/spleen_3.nii.gz", np.asarray(label3.dataobj), shifted)
    # spleen_10: the image is a 4D series.
    image10 = np.asarray(load_nifti(task / "imagesTr/spleen_10.nii.gz").dataobj)
    layouts.save_nifti(task / "imagesTr/spleen_10.nii.gz", np.stack([image10] * 2, -1), affine)
    # spleen_13, a validation case, is not there at all (the fixture never had it).

    error = _validation_error(adapters.MSDSpleen(str(root), profile=None, allow_incomplete=False))
    by_file = {Path(problem.path).name: problem.message for problem in error.problems}
    assert "outside the class map 0..1" in by_file["spleen_2.nii.gz"]
    assert "{7}" in by_file["spleen_2.nii.gz"]
    assert "affine differs from spleen_3.nii.gz" in by_file["spleen_3.nii.gz"]
    assert "not a 3D volume" in by_file["spleen_10.nii.gz"]
    assert by_file["spleen_13.nii.gz"] == "file is missing"
    assert "split 'train' has 2 of the 32 cases" in str(error)
    # One message carrying every problem, each with its full path.
    for problem in error.problems:
        assert f"{problem.path}: {problem.message}" in str(error)


def test_shape_mismatch_unreadable_label_and_bad_metadata(tmp_path: Path) -> None:
    root = fresh_layout(adapters.MSDLiver, tmp_path / "msd")
    task = root / "Task03_Liver"
    affine = load_nifti(task / "labelsTr/liver_0.nii.gz").affine
    layouts.save_nifti(task / "labelsTr/liver_0.nii.gz", np.zeros((5, 5, 5), np.uint8), affine)
    # A truncated gzip stream: the header parses, the voxels do not.
    compressed = (task / "labelsTr/liver_1.nii.gz").read_bytes()
    (task / "labelsTr/liver_1.nii.gz").write_bytes(gzip.compress(gzip.decompress(compressed)[:400]))
    dataset_json = json.loads((task / "dataset.json").read_text())
    dataset_json["labels"] = {"0": "background", "1": "liver"}
    (task / "dataset.json").write_text(json.dumps(dataset_json))

    error = _validation_error(adapters.MSDLiver(str(root), profile=None, allow_incomplete=True))
    messages = {Path(problem.path).name: problem.message for problem in error.problems}
    assert "shape (5, 5, 5) differs from liver_0.nii.gz" in messages["liver_0.nii.gz"]
    assert "unreadable" in messages["liver_1.nii.gz"]
    assert "declares 2 labels" in messages["dataset.json"]


def test_totalsegmentator_checks_each_class_mask(tmp_path: Path) -> None:
    root = fresh_layout(adapters.TotalSegmentatorV2, tmp_path / "ts")
    (root / "s0000/segmentations/liver.nii.gz").unlink()
    spleen = load_nifti(root / "s0001/segmentations/spleen.nii.gz")
    values = np.asarray(spleen.dataobj).copy()
    values[values == 1] = 2  # a binary mask may only hold 0 and 1
    layouts.save_nifti(root / "s0001/segmentations/spleen.nii.gz", values, spleen.affine)

    error = _validation_error(
        adapters.TotalSegmentatorV2(str(root), split="train", profile=None, allow_incomplete=True)
    )
    messages = {str(Path(p.path).relative_to(root)): p.message for p in error.problems}
    assert messages == {
        "s0000/segmentations/liver.nii.gz": "file is missing",
        "s0001/segmentations/spleen.nii.gz": "label values {2} are outside the class map 0..1",
    }


def test_totalsegmentator_reports_a_missing_meta_csv(tmp_path: Path) -> None:
    root = fresh_layout(adapters.TotalSegmentatorV2, tmp_path / "ts")
    (root / "meta.csv").unlink()
    error = _validation_error(adapters.TotalSegmentatorV2(str(root), profile=None))
    assert [Path(problem.path).name for problem in error.problems] == ["meta.csv"]


@pytest.mark.parametrize(
    ("values", "allowed_max", "expected"),
    [
        (np.array([0, 1, 2], np.uint8), 2, None),
        (np.array([0.0, 1.0, 2.0]), 2, None),
        (np.array([0.0, 0.5]), 2, "label holds non-integer values"),
        (np.array([0.0, np.nan]), 2, "label holds NaN or infinite values"),
        (np.array([-1, 0, 3], np.int16), 2, "label values {-1, 3} are outside the class map 0..2"),
    ],
)
def test_label_value_check(values: np.ndarray, allowed_max: int, expected: str | None) -> None:
    assert validation.check_label_values(values, allowed_max) == expected
