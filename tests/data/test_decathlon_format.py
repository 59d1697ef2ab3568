"""DecathlonFormat: user datasets in the Decathlon / nnU-Net raw layout, with explicit splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters.decathlon_format import canonical_names, case_id_of
from eva_coralbay.data.synthetic import layouts
from tests.data.adapter_fixtures import isolated_cache, load_nifti

__all__ = ["isolated_cache"]  # a fixture: imported to be used


@pytest.fixture(scope="module")
def phantoms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training and one validation phantom, split by dataset.json's `validation` list."""
    return layouts.write_decathlon_format(tmp_path_factory.mktemp("phantoms") / "Phantoms")


def _read(dataset: adapters.DecathlonFormat) -> dict[str, str]:
    dataset.configure()
    return {case.case_id: case.split for case in dataset.cases}


def test_validation_list_splits_the_cases_and_labels_name_the_classes(phantoms_root: Path) -> None:
    dataset = adapters.DecathlonFormat(str(phantoms_root), profile=None, num_classes=7)
    assert _read(dataset) == {"phantom_001": "train", "phantom_002": "train", "phantom_003": "val"}
    dataset.validate()
    assert dataset.classes == list(layouts.PHANTOM_CLASSES)

    val = adapters.DecathlonFormat(str(phantoms_root), split="val", profile=None)
    val.configure()
    volume, mask, metadata = val[0]
    assert metadata == {"case_id": "phantom_003", "split": "val"}
    # Oracle: the files as nibabel reads them.
    image = load_nifti(phantoms_root / "imagesTr" / "phantom_003.nii.gz")
    label = load_nifti(phantoms_root / "labelsTr" / "phantom_003.nii.gz")
    np.testing.assert_array_equal(volume[0].numpy(), image.get_fdata(dtype=np.float32))
    np.testing.assert_array_equal(mask[0].numpy(), np.asarray(label.dataobj))


def test_root_may_be_the_parent_folder(phantoms_root: Path) -> None:
    dataset = adapters.DecathlonFormat(str(phantoms_root.parent), split="train", profile=None)
    assert dataset.task_dir == phantoms_root
    assert list(_read(dataset)) == ["phantom_001", "phantom_002"]


def test_a_decathlon_task_reads_like_its_benchmark_adapter(tmp_path: Path) -> None:
    """MSD Task09 with the spleen adapter's validation case listed gives the adapter's arrays."""
    layouts.write_msd(adapters.MSDSpleen, tmp_path)
    task_dir = tmp_path / "Task09_Spleen"
    dataset_json = json.loads((task_dir / "dataset.json").read_text())
    val_number = layouts.MSD_EXAMPLE_CASES["Task09_Spleen"][1]
    assert val_number in adapters.MSDSpleen.val_ids
    dataset_json["validation"] = [f"./imagesTr/spleen_{val_number}.nii.gz"]
    (task_dir / "dataset.json").write_text(json.dumps(dataset_json))

    generic = adapters.DecathlonFormat(str(tmp_path), split="val", allow_incomplete=True)
    benchmark = adapters.MSDSpleen(str(tmp_path), split="val", allow_incomplete=True)
    generic.configure()
    benchmark.configure()
    assert [c.case_id for c in generic.cases] == [c.case_id for c in benchmark.cases]
    assert generic.classes == benchmark.classes == ["background", "spleen"]
    ours, theirs = generic.load_standard(0), benchmark.load_standard(0)
    np.testing.assert_array_equal(ours.image, theirs.image)
    np.testing.assert_array_equal(ours.label, theirs.label)
    np.testing.assert_array_equal(ours.affine, theirs.affine)


def _nnunet_v2(root: Path, source: Path) -> Path:
    """The phantoms as an nnU-Net v2 raw dataset: `_0000` images, labels name -> id, no lists."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case in ("phantom_001", "phantom_002", "phantom_003"):
        shutil.copy(
            source / "imagesTr" / f"{case}.nii.gz", root / "imagesTr" / f"{case}_0000.nii.gz"
        )
        shutil.copy(source / "labelsTr" / f"{case}.nii.gz", root / "labelsTr" / f"{case}.nii.gz")
    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": {name: i for i, name in enumerate(layouts.PHANTOM_CLASSES)},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(dataset_json))
    return root


def test_nnunet_raw_dataset_with_splits_final(tmp_path: Path, phantoms_root: Path) -> None:
    root = _nnunet_v2(tmp_path / "Dataset501_Phantoms", phantoms_root)
    with pytest.raises(ValueError, match=r"no validation split.*never split at random"):
        _read(adapters.DecathlonFormat(str(root), profile=None))

    folds = [
        {"train": ["phantom_001", "phantom_002"], "val": ["phantom_003"]},
        {"train": ["phantom_002", "phantom_003"], "val": ["phantom_001"]},
    ]
    (root / "splits_final.json").write_text(json.dumps(folds))
    fold0 = adapters.DecathlonFormat(str(root), profile=None)
    assert _read(fold0) == {"phantom_001": "train", "phantom_002": "train", "phantom_003": "val"}
    fold0.validate()
    assert fold0.cases[0].image.name == "phantom_001_0000.nii.gz"
    assert fold0.classes == list(layouts.PHANTOM_CLASSES)
    fold1 = adapters.DecathlonFormat(str(root), profile=None, fold=1)
    assert _read(fold1)["phantom_001"] == "val"
    with pytest.raises(ValueError, match="fold 2"):
        _read(adapters.DecathlonFormat(str(root), profile=None, fold=2))


def test_bad_metadata_is_named(tmp_path: Path, phantoms_root: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(phantoms_root, root)
    dataset_json = json.loads((root / "dataset.json").read_text())

    with pytest.raises(ValueError, match=r"dataset.json: declares 7 labels .* num_classes=3"):
        adapters.DecathlonFormat(str(root), num_classes=3)

    (root / "dataset.json").write_text(json.dumps({**dataset_json, "validation": ["phantom_009"]}))
    with pytest.raises(ValueError, match=r"validation cases \['phantom_009'\] are not labelled"):
        _read(adapters.DecathlonFormat(str(root), profile=None))

    labels = {"0": "background", "1": "liver", "3": "spleen"}
    (root / "dataset.json").write_text(json.dumps({**dataset_json, "labels": labels}))
    with pytest.raises(ValueError, match=r"label ids must be 0..2, got \[0, 1, 3\]"):
        adapters.DecathlonFormat(str(root))

    two_channels = {**dataset_json, "modality": {"0": "CT", "1": "PET"}}
    (root / "dataset.json").write_text(json.dumps(two_channels))
    dataset = adapters.DecathlonFormat(str(root), profile=None)
    dataset.configure()
    with pytest.raises(adapters.DatasetValidationError, match="2 input channels"):
        dataset.validate()

    (root / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken/dataset\.json: malformed JSON"):
        adapters.DecathlonFormat(str(root))
    with pytest.raises(ValueError, match=r"no dataset\.json here or in a sub-folder"):
        adapters.DecathlonFormat(str(tmp_path / "nowhere"))


def test_missing_files_are_reported_by_validate(tmp_path: Path, phantoms_root: Path) -> None:
    root = tmp_path / "missing"
    shutil.copytree(phantoms_root, root)
    (root / "labelsTr" / "phantom_002.nii.gz").unlink()
    dataset = adapters.DecathlonFormat(str(root), profile=None)
    dataset.configure()
    with pytest.raises(adapters.DatasetValidationError, match=r"phantom_002\.nii\.gz"):
        dataset.validate()


def test_class_names_and_case_ids() -> None:
    assert canonical_names(["BG", "Spleen", "Urinary Bladder", "Right Kidney"]) == (
        "background",
        "spleen",
        "urinary_bladder",
        "right_kidney",
    )
    with pytest.raises(ValueError, match="same class name twice"):
        canonical_names(["background", "Liver", "liver"])
    assert case_id_of("./imagesTr/liver_7_0000.nii.gz") == "liver_7"
    assert case_id_of("labelsTr/liver_7.nii.gz") == "liver_7"
    assert case_id_of("liver_7") == "liver_7"
    # Four trailing digits are a channel only on an image file; elsewhere they are the id.
    assert case_id_of("labelsTr/case_0001.nii.gz") == "case_0001"
    assert case_id_of("case_0001") == "case_0001"
    assert case_id_of("imagesTr/case_0001_0000.nii.gz") == "case_0001"


def test_adapter_by_name_knows_the_generic_adapter() -> None:
    assert adapters.adapter_by_name("DecathlonFormat") is adapters.DecathlonFormat
    assert adapters.adapter_by_name("decathlon_format") is adapters.DecathlonFormat


def test_preprocess_caches_a_user_dataset_under_its_own_key(
    phantoms_root: Path, tmp_path: Path
) -> None:
    from eva_coralbay.data.cache import preprocess

    dataset = adapters.DecathlonFormat(str(phantoms_root), cache=str(tmp_path))
    dataset.setup()
    report = preprocess(dataset, tmp_path)
    assert sorted(report.written) == ["phantom_001", "phantom_002", "phantom_003"]
    assert report.directory.parent.name == dataset.task_id
    assert dataset.task_id.startswith("decathlon_format-phantoms-")

    reader = adapters.DecathlonFormat(str(phantoms_root), split="val", cache=str(tmp_path))
    reader.configure()
    case = reader.cases[0]
    cached, fresh = reader.load_standard(0), reader.standardise(case)
    assert isinstance(cached.image, np.memmap)  # read from the cache
    np.testing.assert_array_equal(cached.image, fresh.image)
    np.testing.assert_array_equal(cached.label, fresh.label)
