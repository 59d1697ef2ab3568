"""ScanTable: any scan-labelled dataset from a table of path, label, patient and split."""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
import pytest

from eva_coralbay import cli
from eva_coralbay.data.adapters import DatasetValidationError, ScanTable, adapter_by_name
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.synthetic import dicom, metaimage
from eva_coralbay.data.synthetic import scan_table as synthetic

PROFILE = PreprocessingProfile(
    spacing=(synthetic.SPACING_MM, synthetic.SPACING_MM, synthetic.SPACING_MM)
)
"""CoralBay's window on the phantoms' own grid: standardising resamples nothing."""

COLUMNS = ["path", "label", "patient_id", "split"]


def _dataset(root: pathlib.Path, tmp_path: pathlib.Path, **kwargs: object) -> ScanTable:
    dataset = ScanTable(str(root), profile=PROFILE, cache=str(tmp_path / "cache"), **kwargs)  # type: ignore[arg-type]
    dataset.configure()
    return dataset


def _write_rows(table: pathlib.Path, rows: list[list[str]], columns: list[str] = COLUMNS) -> None:
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


@pytest.mark.parametrize("table_name", ["scans.csv", "scans.parquet"])
def test_the_table_gives_each_scan_its_class_patient_and_split(
    table_name: str, tmp_path: pathlib.Path
) -> None:
    table = synthetic.write_scan_table(tmp_path / "data", table_name=table_name)
    # The folder finds its scans.csv / scans.parquet; the table itself works as well.
    for root in (table.parent, table):
        for split in ("train", "val"):
            dataset = _dataset(root, tmp_path, split=split)
            assert dataset.problems() == []
            expected = [scan for scan in synthetic.SHAPE_SCANS if scan.split == split]
            # Classes: the table's labels in natural order.
            assert dataset.classes == ["ball", "cube", "rod"]
            assert [
                (c.case_id, c.patient_id, dataset.classes[c.target]) for c in dataset.cases
            ] == [(scan.path, scan.patient_id, scan.label) for scan in expected]
    dataset = _dataset(table, tmp_path, split="val")
    volume, target, metadata = dataset[0]
    first = next(scan for scan in synthetic.SHAPE_SCANS if scan.split == "val")
    assert tuple(volume.shape) == (1, synthetic.SIZE, synthetic.SIZE, synthetic.SIZE)
    assert int(target) == dataset.classes.index(first.label)
    assert metadata == {"case_id": first.path, "patient_id": first.patient_id}
    # The object is where the phantom put it, on the profile's output range (0..1).
    voxels = volume[0].numpy()
    low, high = PROFILE.intensity_range
    expected_value = (first.hu - low) / (high - low)
    assert np.isclose(voxels[synthetic.SIZE // 2, synthetic.SIZE // 2, synthetic.SIZE // 2],
                      expected_value, atol=1e-6)  # fmt: skip
    assert voxels.min() == 0.0
    assert dataset.filename(0) == first.path


def test_declared_classes_set_the_targets_and_any_other_label_is_reported(
    tmp_path: pathlib.Path,
) -> None:
    table = synthetic.write_scan_table(tmp_path / "data")
    dataset = _dataset(table, tmp_path, classes=["rod", "cube", "ball"], num_classes=3)
    assert dataset.problems() == []
    assert {(c.case_id.split("/")[-1], c.target) for c in dataset.cases} == {
        ("rod.nii.gz", 0),
        ("cube.nii.gz", 1),
        ("ball.nii.gz", 2),
    }
    dataset = _dataset(table, tmp_path, classes=["cube", "ball"])
    problems = [str(problem) for problem in dataset.problems()]
    rods = [i for i, scan in enumerate(synthetic.SHAPE_SCANS) if scan.label == "rod"]
    assert problems == [
        f"{table}:{index + 2}: label 'rod' is not one of ['cube', 'ball']" for index in rods
    ]
    with pytest.raises(ValueError, match=r"3 classes .* declared, but num_classes=2"):
        ScanTable(str(table), classes=["a", "b", "c"], num_classes=2)
    with pytest.raises(ValueError, match="at least two distinct names"):
        ScanTable(str(table), classes=["a", "a"])
    dataset = _dataset(table, tmp_path, num_classes=2)
    assert [str(p) for p in dataset.problems()] == [
        f"{table}: holds 3 classes ['ball', 'cube', 'rod'], but the config expects num_classes=2"
    ]


def test_every_bad_row_is_reported_at_once_naming_table_and_line(tmp_path: pathlib.Path) -> None:
    table = synthetic.write_scan_table(tmp_path / "data")
    scans = synthetic.SHAPE_SCANS
    rows = [[scan.path, scan.label, scan.patient_id, scan.split] for scan in scans]
    rows[1][0] = "scans/nobody/missing.nii.gz"  # line 3: a missing scan
    rows[2][3] = "validation"  # line 4: an unknown split
    rows[3][1] = "pyramid"  # line 5: a label not among the declared classes
    rows[5][2] = rows[0][2]  # line 7: the patient of line 2 (train), in val
    rows[6][2] = ""  # line 8: no patient id
    rows.append(rows[7])  # line 11: the scan of line 9 again
    _write_rows(table, rows)
    dataset = _dataset(table, tmp_path, classes=["ball", "cube", "rod"])
    with pytest.raises(DatasetValidationError) as raised:
        dataset.validate()
    missing = table.parent / "scans/nobody/missing.nii.gz"
    assert [str(problem) for problem in raised.value.problems] == [
        f"{table}:4: unknown split 'validation'; use one of ['train', 'val']",
        f"{table}:5: label 'pyramid' is not one of ['ball', 'cube', 'rod']",
        f"{table}:7: patient {rows[0][2]} is in the val split here and in the train split at "
        f"{table}:2: no patient may be in two splits",
        f"{table}:8: empty patient_id",
        f"{table}:11: scan {rows[7][0]} is listed twice, also at {table}:9",
        f"{missing}: missing scan (listed in {table}:3)",
    ]
    # allow_incomplete leaves the missing scan out; the table's own problems stay.
    dataset = _dataset(table, tmp_path, classes=["ball", "cube", "rod"], allow_incomplete=True)
    assert len(dataset.problems()) == 5
    assert str(missing) not in {problem.path for problem in dataset.problems()}


def test_a_missing_column_a_missing_table_and_an_unreadable_scan_are_named(
    tmp_path: pathlib.Path,
) -> None:
    table = tmp_path / "data" / "scans.csv"
    table.parent.mkdir()
    _write_rows(table, [["a.nii.gz", "x", "p1"]], columns=["path", "label", "patient"])
    (problem,) = _dataset(table, tmp_path).problems()
    assert str(problem) == (
        f"{table}:1: missing column(s) ['patient_id', 'split']; the table needs "
        "['path', 'label', 'patient_id', 'split'], it has ['path', 'label', 'patient']"
    )
    (problem,) = _dataset(tmp_path / "empty", tmp_path).problems()
    assert problem.path == str(tmp_path / "empty") and "no scan table" in problem.message

    broken = tmp_path / "data" / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    text = tmp_path / "data" / "notes.txt"
    text.write_text("not a scan")
    _write_rows(
        table,
        [["broken.nii.gz", "x", "p1", "train"], [str(text), "y", "p2", "val"]],
    )
    problems = _dataset(table, tmp_path).problems()
    assert [problem.path for problem in problems] == [str(broken), str(text)]
    assert "unreadable NIfTI header" in problems[0].message
    assert "unsupported file type" in problems[1].message
    assert problems[1].message.endswith(f"(listed in {table}:3)")


def test_nifti_metaimage_and_dicom_scans_of_one_phantom_standardise_alike(
    tmp_path: pathlib.Path,
) -> None:
    phantom = synthetic.PhantomScan("cube", "p0", "train", "cube", 40.0, offset=2)
    ball = synthetic.PhantomScan("ball", "p3", "val", "ball", 40.0)  # a second class
    root = tmp_path / "data"
    synthetic.write_scan_table(root, [phantom, ball])
    voxels = synthetic.phantom(phantom)
    spacing = (synthetic.SPACING_MM, synthetic.SPACING_MM, synthetic.SPACING_MM)
    # MetaImage stores LPS: the RAS phantom mirrored along its first two axes.
    metaimage.write_mha(
        tmp_path / "outside" / "cube.mha",
        voxels[::-1, ::-1, :],
        spacing=spacing,
        origin_lps=(0.0, 0.0, 0.0),
    )
    affine = np.diag([*spacing, 1.0])
    slices = dicom.axial_slices(voxels, affine)
    dicom.write_series(
        root / "series" / "cube",
        slices,
        [f"{index:03d}.dcm" for index in range(len(slices))],
        slice_thickness=synthetic.SPACING_MM,
    )
    table = root / "scans.csv"
    _write_rows(
        table,
        [
            [phantom.path, "cube", "p0", "train"],
            [str(tmp_path / "outside" / "cube.mha"), "cube", "p1", "train"],
            ["series/cube", "cube", "p2", "val"],
            [ball.path, "ball", "p3", "val"],
        ],
    )
    dataset = _dataset(table, tmp_path)
    assert dataset.problems() == []
    images = [dataset.load_standard(index).image for index in range(3)]
    for image in images[1:]:
        assert image.shape == images[0].shape
        assert np.allclose(image, images[0], atol=1e-6)
    # An absolute path outside the table's folder keeps its path, without the root, as a name.
    assert dataset.cases[1].case_id == str(tmp_path / "outside" / "cube.mha")
    assert dataset.filename(1) == str(tmp_path / "outside" / "cube.mha").lstrip("/")
    assert dataset.filename(2) == "series/cube"


def test_coralbay_preprocess_caches_the_scans_the_adapter_then_reads(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = synthetic.write_scan_table(tmp_path / "data")
    assert adapter_by_name("scan_table") is ScanTable
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE.to_dict()))
    arguments = ["preprocess", "--dataset", "ScanTable", "--root", str(table)]
    cache = tmp_path / "cache"
    assert cli.main([*arguments, "--profile", str(profile), "--cache", str(cache)]) == 0
    assert f"{len(synthetic.SHAPE_SCANS)} written" in capsys.readouterr().out
    dataset = _dataset(table, tmp_path)
    assert all(dataset.is_cached(scan) for scan in dataset.cases)
    uncached = _dataset(table, tmp_path, use_cache=False)
    for index in range(len(dataset)):
        assert np.array_equal(
            dataset.load_standard(index).image, uncached.load_standard(index).image
        )
    # A bad table stops preprocess before anything is written, with the problem named.
    rows = [[s.path, s.label, s.patient_id, s.split] for s in synthetic.SHAPE_SCANS]
    rows[0][3] = "test"
    _write_rows(table, rows)
    assert cli.main([*arguments, "--profile", str(profile), "--cache", str(cache)]) == 1
    assert f"{table}:2: unknown split 'test'" in capsys.readouterr().err
