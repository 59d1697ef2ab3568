"""CC-CCII: whole scans from slice folders or .npy volumes, through the profile, by patient."""

from __future__ import annotations

import csv
import pathlib

import numpy as np
import pytest
from PIL import Image

from eva_coralbay import cli
from eva_coralbay.data import cache
from eva_coralbay.data.adapters import CC_CCII, DatasetValidationError
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.synthetic import cc_ccii as synthetic

# A coarse grid keeps the standardised scans small: 350 mm / 7 mm = 50 voxels across a slice.
PROFILE = PreprocessingProfile(spacing=(7.0, 7.0, 7.0))


def _dataset(
    root: pathlib.Path,
    split: str | None,
    tmp_path: pathlib.Path,
    use_cache: bool = True,
    allow_incomplete: bool = False,
) -> CC_CCII:
    dataset = CC_CCII(
        str(root),
        split=split,
        profile=PROFILE,
        cache=str(tmp_path / "cache"),
        use_cache=use_cache,
        allow_incomplete=allow_incomplete,
    )
    dataset.configure()
    return dataset


def _expected(split: str) -> dict[str, tuple[str, int]]:
    return {
        f"{s.label}/{s.patient_id}/{s.scan_id}": (str(s.patient_id), s.target)
        for s in synthetic.DEFAULT_SCANS
        if s.split == split
    }


@pytest.mark.parametrize("layout", ["slices", "npy"])
def test_both_layouts_give_the_fold_tables_scans_targets_and_patients(
    layout: str, tmp_path: pathlib.Path
) -> None:
    root = tmp_path / layout
    if layout == "slices":
        synthetic.write_slice_release(root, fold_tables=True)
    else:
        synthetic.write_npy_release(root)
    for split in ("train", "val"):
        dataset = _dataset(root, split, tmp_path)
        assert dataset.layout == layout and dataset.problems() == []
        found = {}
        for index in range(len(dataset)):
            volume, target, metadata = dataset[index]
            assert volume.shape[0] == 1 and volume.ndim == 4
            found[metadata["case_id"]] = (metadata["patient_id"], int(target))
        assert found == _expected(split)


def test_the_two_layouts_standardise_a_scan_to_the_same_volume(tmp_path: pathlib.Path) -> None:
    synthetic.write_slice_release(tmp_path / "slices", fold_tables=True)
    synthetic.write_npy_release(tmp_path / "npy")
    from_slices = _dataset(tmp_path / "slices", "val", tmp_path, use_cache=False)
    from_npy = _dataset(tmp_path / "npy", "val", tmp_path, use_cache=False)
    for index in range(len(from_slices)):
        left, right = from_slices.load_standard(index), from_npy.load_standard(index)
        assert left.case_id == right.case_id
        np.testing.assert_array_equal(left.image, right.image)  # PNG is lossless
        np.testing.assert_array_equal(left.affine, right.affine)


def test_slices_stack_in_slice_number_order_not_name_order(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "NCP" / "7" / "70"
    folder.mkdir(parents=True)
    # "IM10.png" sorts before "IM2.png" by name; each slice's grey level is its number.
    for number in range(1, 13):
        pixels = np.full((16, 16), number * 10, dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"IM{number}.png")
    dataset = _dataset(tmp_path, None, tmp_path)
    (scan,) = dataset.cases
    raw = dataset.read_scan(scan).numpy()[0]
    assert raw.shape == (16, 16, 12)
    low, high = PROFILE.intensity_range
    grey = (raw[0, 0, :] - low) / (high - low) * 255
    np.testing.assert_allclose(grey, np.arange(1, 13) * 10, atol=1e-3)


def test_the_first_slice_is_superior_and_the_image_left_the_patients_right(
    tmp_path: pathlib.Path,
) -> None:
    synthetic.write_slice_release(tmp_path, fold_tables=True)
    dataset = _dataset(tmp_path, "train", tmp_path)
    standard = dataset.load_standard(0)
    # The marker: the first slice's top-left pixels (superior, anterior, the patient's right).
    marker = PROFILE.scale_hu(synthetic.MARKER_HU) - 0.05
    bright = np.argwhere(standard.image >= marker)
    assert len(bright)
    shape = np.asarray(standard.image.shape)
    # RAS voxel axes: the marker is at the high end of x (right), y (anterior) and z (superior).
    assert (bright >= shape - 4).all(), (bright, shape)  # a 22 mm marker: 3 voxels of 7 mm
    world = standard.affine @ np.array([*bright[0], 1.0])
    centre = standard.affine @ np.array([*(shape - 1) / 2, 1.0])
    assert (world[:3] > centre[:3]).all()


def test_a_patient_in_two_splits_is_refused_naming_the_tables(tmp_path: pathlib.Path) -> None:
    synthetic.write_npy_release(tmp_path)
    valid = tmp_path / "CC_CCII_fold0_valid.csv"
    with valid.open("a", newline="") as handle:  # patient 201 trains on scans 2001 and 2002
        csv.writer(handle).writerow(["CP-1.zip", 1, "CP", 201, 2009, 12, 1, "[2009]"])
    with pytest.raises(DatasetValidationError) as raised:
        _dataset(tmp_path, "val", tmp_path)
    message = str(raised.value)
    assert f"{valid}:5: patient 201 is in the val split and in the train split" in message
    assert "CC_CCII_fold0_train.csv:3)" in message  # scan 2001's row


def test_contradicting_fold_rows_are_refused_per_line(tmp_path: pathlib.Path) -> None:
    synthetic.write_npy_release(tmp_path)
    train = tmp_path / "CC_CCII_fold0_train.csv"
    with train.open("a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["NCP-1.zip", 2, "CP", 401, 4001, 12, 1, "[4001]"])
        writer.writerow(["NCP-1.zip", 7, "NCP", 402, 4002, 12, 1, "[4002]"])
        writer.writerow(["NCP-1.zip", 2, "NCP", 403, 3001, 12, 1, "[3001]"])
    with pytest.raises(DatasetValidationError) as raised:
        _dataset(tmp_path, None, tmp_path)
    problems = [str(problem) for problem in raised.value.problems]
    assert problems == [
        f"{train}:6: target 2 is NCP, but the row's label is 'CP'",
        f"{train}:7: target 7 is outside 0..2",
        f"{train}:8: scan 3001 is listed twice, also {train}:5",
    ]


def test_broken_scan_folders_are_reported_per_case_with_the_file(tmp_path: pathlib.Path) -> None:
    synthetic.write_slice_release(tmp_path, fold_tables=True)
    gap = synthetic.scan_folder(tmp_path, synthetic.DEFAULT_SCANS[0])
    (gap / "5.png").unlink()
    (gap / "6.png").unlink()
    mixed = synthetic.scan_folder(tmp_path, synthetic.DEFAULT_SCANS[2])
    Image.new("L", (32, 32)).save(mixed / "3.png")
    problems = [str(problem) for problem in _dataset(tmp_path, "train", tmp_path).problems()]
    assert problems == [
        f"{gap / '7.png'}: slice numbers jump from 4 (4.png) to 7: 2 slice(s) missing",
        f"{mixed / '3.png'}: is 32x32 pixels, the scan's first slice 1.png is 48x48",
    ]


def test_a_partial_scan_against_the_release_table_is_reported(tmp_path: pathlib.Path) -> None:
    synthetic.write_slice_release(tmp_path)  # no fold tables: the release's own list
    scan = synthetic.DEFAULT_SCANS[1]
    folder = synthetic.scan_folder(tmp_path, scan)
    (folder / f"{scan.slices}.png").unlink()
    problems = [str(problem) for problem in _dataset(tmp_path, None, tmp_path).problems()]
    assert problems == [
        f"{folder}: holds {scan.slices - 1} slice images, {tmp_path / 'unzip_filenames.csv'}:3 "
        f"lists {scan.slices}: a partial scan"
    ]


def test_a_missing_or_partial_release_lists_what_is_missing(tmp_path: pathlib.Path) -> None:
    synthetic.write_npy_release(tmp_path)
    gone = [synthetic.npy_path(tmp_path, scan) for scan in synthetic.DEFAULT_SCANS[:2]]
    for path in gone:
        path.unlink()
    problems = [str(problem) for problem in _dataset(tmp_path, None, tmp_path).problems()]
    assert problems == [
        f"{gone[0]}: missing (listed in {tmp_path / 'CC_CCII_fold0_train.csv'}:2)",
        f"{gone[1]}: missing (listed in {tmp_path / 'CC_CCII_fold0_valid.csv'}:2)",
    ]
    subset = _dataset(tmp_path, None, tmp_path, allow_incomplete=True)
    assert subset.problems() == [] and len(subset) == len(synthetic.DEFAULT_SCANS) - 2

    for table in tmp_path.glob("CC_CCII_fold0_*.csv"):
        table.unlink()
    problems = [str(problem) for problem in _dataset(tmp_path, None, tmp_path).problems()]
    assert problems == [
        f"{tmp_path / 'CC_CCII_fold0_train.csv'}: missing: the fold table that splits the .npy "
        "volumes",
        f"{tmp_path / 'CC_CCII_fold0_valid.csv'}: missing: the fold table that splits the .npy "
        "volumes",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    (problem,) = _dataset(empty, None, tmp_path).problems()
    assert str(problem).startswith(f"{empty}: no CC-CCII scans found")


def test_without_fold_tables_every_patient_is_in_one_split(tmp_path: pathlib.Path) -> None:
    scans = [
        synthetic.SyntheticScan(label, patient, patient * 10 + k, "train", slices=3, size=8)
        for patient, label in enumerate(["NCP", "CP", "Normal"] * 8, start=1)
        for k in range(2)
    ]
    synthetic.write_slice_release(tmp_path, scans, suffix=".jpg", release_table=False)
    by_split = {
        split: {scan.patient_id for scan in _dataset(tmp_path, split, tmp_path).cases}
        for split in ("train", "val")
    }
    assert by_split["train"] and by_split["val"]
    assert not by_split["train"] & by_split["val"]
    assert by_split["train"] | by_split["val"] == {str(scan.patient_id) for scan in scans}


def test_preprocess_caches_the_scans_and_the_adapter_reads_them(tmp_path: pathlib.Path) -> None:
    root = synthetic.write_npy_release(tmp_path / "release")
    arguments = ["preprocess", "--dataset", "CC_CCII", "--root", str(root)]
    arguments += ["--profile", str(_profile_file(tmp_path)), "--cache", str(tmp_path / "cache")]
    assert cli.main(arguments) == 0
    dataset = _dataset(root, "val", tmp_path)
    for index, scan in enumerate(dataset.cases):
        cached = dataset.load_standard(index)
        assert isinstance(cached.image, np.memmap), scan.case_id  # read from the cache
        np.testing.assert_array_equal(cached.image, dataset.standardise(scan).image)
    report = cache.preprocess(dataset, tmp_path / "cache")
    assert sorted(report.reused) == sorted(scan.case_id for scan in dataset.cases)


def _profile_file(tmp_path: pathlib.Path) -> pathlib.Path:
    import json

    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE.to_dict()))
    return path
