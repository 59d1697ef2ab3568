"""LUNA25: nodule patches from world coordinates, through the profile, split by patient."""

from __future__ import annotations

import csv
import pathlib

import numpy as np
import pytest

from eva_coralbay.data.adapters import LUNA25
from eva_coralbay.data.adapters.luna25 import ANNOTATIONS, patient_split
from eva_coralbay.data.synthetic import layouts

# NODULE_HU on the profile's [-1000, 1000] -> [0, 1] window.
NODULE = (layouts.NODULE_HU + 1000) / 2000


@pytest.fixture
def release(tmp_path: pathlib.Path) -> pathlib.Path:
    return layouts.write_luna25(tmp_path / "luna25")


def _rows(release: pathlib.Path) -> list[dict[str, str]]:
    with (release / ANNOTATIONS).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_patch_is_centred_on_its_nodule_however_the_scan_is_stored(
    release: pathlib.Path,
) -> None:
    seen = {}
    for split in ("train", "val"):
        dataset = LUNA25(str(release), split, patch_size=16)
        dataset.configure()
        assert dataset.problems() == []
        for index in range(len(dataset)):
            patch = dataset.load_data(index).numpy()[0]
            # The patch centre is the nodule (the brightest thing in the phantom), whether the
            # scan's first axis runs to the patient's left or right.
            assert patch[8, 8, 8] == pytest.approx(NODULE, abs=1e-3), dataset.case_id(index)
            seen[dataset.case_id(index)] = (split, int(dataset.load_target(index)))
            # One embedding file per nodule, although DICOM UIDs are full of dots.
            stem = pathlib.Path(dataset.filename(index)).with_suffix("")
            assert str(stem) == dataset.case_id(index)
    rows = _rows(release)
    assert seen == {
        f"{row['SeriesInstanceUID']}/{row['AnnotationID']}": (
            patient_split(row["PatientID"]),
            int(row["label"]),
        )
        for row in rows
    }


def test_splits_are_by_patient(release: pathlib.Path) -> None:
    patients = {}
    for split in ("train", "val"):
        dataset = LUNA25(str(release), split)
        dataset.configure()
        patients[split] = {nodule.patient_id for nodule in dataset.nodules}
    assert patients["train"] and patients["val"]
    assert not patients["train"] & patients["val"]
    assert patients["train"] | patients["val"] == {row["PatientID"] for row in _rows(release)}


def test_a_coordinate_outside_its_scan_and_a_missing_scan_are_reported(
    release: pathlib.Path,
) -> None:
    rows = _rows(release)
    rows[1]["CoordZ"] = "5000.0"  # a patient of the train split
    with (release / ANNOTATIONS).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    missing = release / "luna25_images" / f"{rows[-1]['SeriesInstanceUID']}.mha"
    missing.unlink()

    train = LUNA25(str(release), "train")
    problems = [str(problem) for problem in train.problems()]
    assert len(problems) == 1 and problems[0].startswith(f"{release / ANNOTATIONS}:3: ")
    assert "lies outside its scan" in problems[0]
    val = LUNA25(str(release), "val")
    assert [str(problem) for problem in val.problems()] == [
        f"{missing}: missing (annotation {row['AnnotationID']})"
        for row in rows
        if row["SeriesInstanceUID"] == rows[-1]["SeriesInstanceUID"]
    ]
    val_incomplete = LUNA25(str(release), "val", allow_incomplete=True)
    val_incomplete.configure()
    assert val_incomplete.problems() == [] and len(val_incomplete) == 0


def test_a_table_without_the_release_columns_is_refused(release: pathlib.Path) -> None:
    (release / ANNOTATIONS).write_text("PatientID,label\nLUNA25-0001,1\n")
    (problem,) = LUNA25(str(release), "train").problems()
    assert str(problem).startswith(str(release / ANNOTATIONS))
    assert "missing column(s) ['SeriesInstanceUID'" in str(problem)


def test_patches_on_the_profile_grid_keep_physical_size(release: pathlib.Path) -> None:
    dataset = LUNA25(str(release), "train", patch_size=(16, 12, 8))
    dataset.configure()
    volume = dataset.load_data(0)
    assert tuple(volume.shape) == (1, 16, 12, 8)
    assert volume.affine is not None
    spacing = np.linalg.norm(volume.affine.numpy()[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, 1.5)  # CoralBay's 1.5 mm grid, whatever the scan's
