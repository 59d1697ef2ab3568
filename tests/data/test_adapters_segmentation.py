"""Segmentation adapters: native layouts through eva's DataModule, splits, class maps, profiles."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import eva
import jsonargparse
import numpy as np
import pytest
from eva.core.data.datamodules.schemas import DataloadersSchema, DatasetsSchema
from eva.vision.data import transforms as eva_transforms
from eva.vision.data.dataloaders.collate_fn import collection_collate
from eva.vision.data.datasets import BTCV as EvaBTCV
from eva.vision.data.datasets import KiTS23 as EvaKiTS23
from eva.vision.data.datasets import LiTS17 as EvaLiTS17
from eva.vision.data.datasets import MSDTask7Pancreas as EvaMSDTask7Pancreas
from eva.vision.data.datasets._utils import ranges_to_indices
from monai.apps.utils import check_hash
from torchvision.transforms.v2 import Compose

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters import base, download, kits23
from eva_coralbay.data.adapters.validation import DatasetValidationError
from eva_coralbay.data.synthetic import layouts
from eva_coralbay.tasks import vocabulary
from tests.data.adapter_fixtures import (
    FAST_PROFILE,
    NativeRoots,
    isolated_cache,
    load_nifti,
    native_roots,
)

__all__ = ["isolated_cache", "native_roots"]

ADAPTERS = adapters.SEGMENTATION_ADAPTERS

# The leaderboard registers these task ids; every adapter must carry one.
LEADERBOARD_TASK_IDS = {
    "btcv", "lits17", "msd_task7_pancreas", "totalsegmentator_v2", "amos22_ct", "kits23", "word",
    "flare22", "chaos", "msd_task3_liver", "msd_task6_lung", "msd_task8_hepatic_vessel",
    "msd_task9_spleen", "msd_task10_colon",
}  # fmt: skip

# What each fixture layout holds (see layouts.py), per split: the oracle for the split logic.
FIXTURE_SPLITS = {
    "BTCV": {"train": {"img0001", "img0002"}, "val": {"img0035"}},
    "LiTS17": {"train": {"volume-0", "volume-1", "volume-28"}, "val": {"volume-2"}},
    "MSDPancreas": {"train": {"pancreas_001", "pancreas_004"}, "val": {"pancreas_012"}},
    "TotalSegmentatorV2": {"train": {"s0000", "s0001"}, "val": {"s0002"}, "test": {"s0003"}},
    "AMOS22CT": {"train": {"amos_0001", "amos_0005"}, "val": {"amos_0008"}},
    "CHAOS": {"train": {"ct_01", "ct_02"}, "val": {"ct_08"}},
    "KiTS23": {"train": {"case_00000", "case_00001"}, "val": {"case_00005"}},
    "WORD": {"train": {"word_0002", "word_0003"}, "val": {"word_0001"}, "test": {"word_0007"}},
    "FLARE22": {"train": {"FLARE22_Tr_0011", "FLARE22_Tr_0012"}, "val": {"FLARE22_Tr_0001"}},
    "MSDLiver": {"train": {"liver_0", "liver_1"}, "val": {"liver_2"}},
    "MSDLung": {"train": {"lung_001", "lung_003"}, "val": {"lung_006"}},
    "MSDHepaticVessel": {
        "train": {"hepaticvessel_001", "hepaticvessel_002"}, "val": {"hepaticvessel_018"}
    },
    "MSDSpleen": {"train": {"spleen_2", "spleen_3"}, "val": {"spleen_10"}},
    "MSDColon": {"train": {"colon_001", "colon_005"}, "val": {"colon_008"}},
}  # fmt: skip


def _train_transforms(num_classes: int, crop: int = 16) -> Compose:
    """eva's own 3D transforms, as in its btcv.yaml (the profile replaces Spacing / scaling)."""
    return Compose(
        [
            eva_transforms.SpatialPad(spatial_size=[crop] * 3),
            eva_transforms.RandCropByLabelClasses(
                spatial_size=[crop] * 3, num_samples=2, num_classes=num_classes, warn=False
            ),
            eva_transforms.RandFlip(spatial_axes=[0, 1, 2]),
        ]
    )


def _loader(batch_size: int, collate: Callable | None = None) -> eva.DataLoader:
    return eva.DataLoader(
        batch_size=batch_size,
        num_workers=0,
        collate_fn=collate,
        pin_memory=False,
        persistent_workers=False,
        prefetch_factor=None,
    )


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_native_layout_feeds_eva_datamodule(
    adapter: type[adapters.SegmentationAdapter], native_roots: NativeRoots
) -> None:
    arguments = {"root": str(native_roots(adapter)), "profile": FAST_PROFILE}
    arguments |= {"allow_incomplete": True, "use_cache": False}
    transforms = _train_transforms(len(adapter.native_classes))
    datamodule = eva.DataModule(
        datasets=DatasetsSchema(
            train=adapter(split="train", transforms=transforms, **arguments),
            val=adapter(split="val", **arguments),
        ),
        dataloaders=DataloadersSchema(train=_loader(2, collection_collate), val=_loader(1)),
    )
    datamodule.prepare_data()
    datamodule.setup("fit")

    volumes, masks, metadata = next(iter(datamodule.train_dataloader()))
    assert volumes.shape == masks.shape == (4, 1, 16, 16, 16)  # 2 cases x 2 crops
    assert volumes.dtype.is_floating_point
    assert 0.0 <= float(volumes.min()) <= float(volumes.max()) <= 1.0
    assert set(masks.unique().tolist()) <= set(range(len(adapter.native_classes)))
    assert {item["split"] for item in metadata} == {"train"}

    (val_loader,) = datamodule.val_dataloader()
    volume, mask, metadata = next(iter(val_loader))
    assert volume.shape == mask.shape and volume.shape[:2] == (1, 1)
    assert len(set(mask.unique().tolist()) - {0}) >= 1  # the phantom's organs arrive labelled
    assert metadata["case_id"][0] in FIXTURE_SPLITS[adapter.__name__]["val"]


def test_every_adapter_is_built_from_an_eva_yaml_config(native_roots: NativeRoots) -> None:
    # The config shape of eva's btcv.yaml: class_path + init_args, with a transforms Compose.
    entries = "".join(
        f"""
        - class_path: eva_coralbay.data.adapters.{adapter.__name__}
          init_args:
            root: {native_roots(adapter)}
            split: val
            profile: {json.dumps(FAST_PROFILE.to_dict())}
            allow_incomplete: true
            transforms:
              class_path: torchvision.transforms.v2.Compose
              init_args:
                transforms:
                  - class_path: eva.vision.data.transforms.SpatialPad
                    init_args:
                      spatial_size: [64, 64, 64]"""
        for adapter in ADAPTERS
    )
    config = f"""
data:
  class_path: eva.DataModule
  init_args:
    datasets:
      predict:{entries}
    dataloaders:
      predict:
        batch_size: 1
        num_workers: 0
        prefetch_factor: null
        persistent_workers: false
        pin_memory: false
"""
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--data", type=eva.DataModule)
    datamodule = parser.instantiate(parser.parse_string(config)).data
    datamodule.setup("predict")
    loaders = datamodule.predict_dataloader()
    assert [type(loader.dataset) for loader in loaders] == list(ADAPTERS)
    for loader in loaders:
        volume, mask, metadata = next(iter(loader))
        assert volume.shape[2:] == mask.shape[2:] == (64, 64, 64)
        assert loader.dataset.profile == FAST_PROFILE
        assert metadata["split"] == ["val"]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_splits_are_read_from_the_native_layout(
    adapter: type[adapters.SegmentationAdapter], native_roots: NativeRoots
) -> None:
    root = native_roots(adapter)
    found: dict[str, set[str]] = {}
    for split in adapter.split_names:
        dataset = adapter(str(root), split=split, profile=None, allow_incomplete=True)
        dataset.configure()
        dataset.validate()
        found[split] = {case.case_id for case in dataset.cases}
        assert all(case.split == split for case in dataset.cases)
    expected = FIXTURE_SPLITS[adapter.__name__]
    assert {split: ids for split, ids in found.items() if ids} == expected

    everything = adapter(str(root), split=None, profile=None, allow_incomplete=True)
    everything.configure()
    assert len(everything) == sum(len(ids) for ids in expected.values())


def test_class_maps_use_the_canonical_vocabulary() -> None:
    assert {adapter.task_id for adapter in ADAPTERS} == LEADERBOARD_TASK_IDS
    for adapter in ADAPTERS:
        base.check_class_map(adapter)
    assert len(set(vocabulary.CANONICAL_CLASSES)) == len(vocabulary.CANONICAL_CLASSES)
    assert adapters.BTCV.canonical_classes[10] == "portal_vein_and_splenic_vein"
    assert adapters.AMOS22CT.canonical_classes[9] == "inferior_vena_cava"  # AMOS "postcava"
    assert adapters.FLARE22.canonical_classes[2] == "kidney_right"
    assert adapters.WORD.canonical_classes[15] == "femur_head_left"


def test_totalsegmentator_vocabulary_matches_the_released_label_map(
    totalsegmentator_dir: Path,
) -> None:
    labels = json.loads((totalsegmentator_dir / "labels_total_v2.json").read_text())
    expected = [labels[str(index)] for index in range(len(labels))]
    assert list(adapters.TotalSegmentatorV2.native_classes) == expected


def test_split_ids_agree_with_evas_and_are_disjoint() -> None:
    # eva's datasets are the peer: same validation cases where both define the benchmark.
    lits_val = set(ranges_to_indices(EvaLiTS17._val_index_ranges))
    assert adapters.MSDLiver.val_ids == lits_val
    assert set(ranges_to_indices(EvaKiTS23._val_index_ranges)) == kits23.VAL_IDS
    assert set(EvaMSDTask7Pancreas._val_ids) == adapters.MSDPancreas.val_ids
    btcv_numbers = sorted([*range(1, 11), *range(21, 41)])  # the 30 labelled BTCV cases
    eva_val = {btcv_numbers[i] for i in ranges_to_indices(EvaBTCV._split_index_ranges["val"])}
    assert eva_val == set(range(35, 41))
    for adapter in (adapters.MSDLiver, adapters.MSDLung, adapters.MSDHepaticVessel,
                    adapters.MSDSpleen, adapters.MSDColon, adapters.MSDPancreas):  # fmt: skip
        assert len(adapter.val_ids) == adapter.expected_cases["val"], adapter.__name__


def test_profile_none_returns_the_stored_arrays(native_roots: NativeRoots) -> None:
    root = native_roots(adapters.BTCV)
    dataset = adapters.BTCV(str(root), split="val", profile=None, allow_incomplete=True)
    dataset.configure()
    volume, mask, _ = dataset[0]
    stored = load_nifti(root / "RawData/Training/img/img0035.nii.gz")
    stored_label = load_nifti(root / "RawData/Training/label/label0035.nii.gz")
    np.testing.assert_array_equal(volume[0].numpy(), np.asarray(stored.dataobj, dtype=np.float32))
    np.testing.assert_array_equal(mask[0].numpy(), np.asarray(stored_label.dataobj))
    assert volume.affine is not None and stored.affine is not None
    np.testing.assert_allclose(volume.affine.numpy(), stored.affine)


def test_standardised_arrays_do_not_depend_on_the_stored_orientation(tmp_path: Path) -> None:
    canonical = adapters.BTCV.canonical_classes
    arrays = {}
    for orientation in ("RAS", "LPS", "SPL"):
        root = tmp_path / orientation
        files = [
            layouts.CaseFiles(
                root / f"RawData/Training/img/img{n:04d}.nii.gz",
                root / f"RawData/Training/label/label{n:04d}.nii.gz",
                seed=7,
                orientation=orientation,
            )
            for n in (1, 35)
        ]
        layouts.write_cases(files, canonical)
        dataset = adapters.BTCV(str(root), split="val", profile=FAST_PROFILE, allow_incomplete=True)
        dataset.configure()
        arrays[orientation] = dataset.load_standard(0)
    reference = arrays["RAS"]
    for orientation in ("LPS", "SPL"):
        np.testing.assert_allclose(arrays[orientation].image, reference.image, atol=1e-5)
        np.testing.assert_array_equal(arrays[orientation].label, reference.label)
        np.testing.assert_allclose(arrays[orientation].affine, reference.affine, atol=1e-6)


def test_incomplete_dataset_is_reported_with_the_missing_files(native_roots: NativeRoots) -> None:
    dataset = adapters.BTCV(str(native_roots(adapters.BTCV)), split="val", profile=None)
    dataset.configure()
    with pytest.raises(DatasetValidationError) as error:
        dataset.validate()
    message = str(error.value)
    for number in range(36, 41):  # img0035 exists in the fixture, 36..40 do not
        assert f"img{number:04d}.nii.gz: file is missing" in message
        assert f"label{number:04d}.nii.gz: file is missing" in message


def test_prepare_data_prints_the_manual_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = adapters.KiTS23(str(tmp_path / "absent"), profile=None)
    dataset.prepare_data()
    printed = capsys.readouterr().err
    assert "kits23_download_data" in printed and "KiTS23" in printed


def test_prepare_data_downloads_a_checksummed_archive(
    tmp_path: Path, native_roots: NativeRoots
) -> None:
    # A local archive stands in for the public URL: the same verify-then-extract path, offline.
    fixture = native_roots(adapters.MSDSpleen) / "Task09_Spleen"
    archive = tmp_path / "Task09_Spleen.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(fixture, arcname="Task09_Spleen")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    assert check_hash(archive, md5, "md5")

    class LocalSpleen(adapters.MSDSpleen):
        resources = (download.Resource(url=str(archive), filename=archive.name, md5=md5),)

    root = tmp_path / "msd"
    dataset = LocalSpleen(
        str(root), split="val", profile=None, download=True, allow_incomplete=True
    )
    dataset.prepare_data()
    dataset.configure()
    dataset.validate()
    assert [case.case_id for case in dataset.cases] == ["spleen_10"]

    class CorruptSpleen(adapters.MSDSpleen):
        resources = (download.Resource(url=str(archive), filename=archive.name, md5="0" * 32),)

    with pytest.raises(RuntimeError, match="MD5"):
        CorruptSpleen(str(tmp_path / "other"), profile=None, download=True).prepare_data()


def test_profile_in_the_adapter_equals_evas_config_transform(native_roots: NativeRoots) -> None:
    # The same profile applied by the adapter and by the ApplyProfile transform of a config.
    from eva_coralbay.data.transforms import ApplyProfile

    root = str(native_roots(adapters.MSDLung))
    raw = adapters.MSDLung(
        root,
        split="val",
        profile=None,
        transforms=ApplyProfile(FAST_PROFILE),
        allow_incomplete=True,
    )
    standardised = adapters.MSDLung(root, split="val", profile=FAST_PROFILE, allow_incomplete=True)
    raw.configure()
    standardised.configure()
    (volume, mask, _), (expected_volume, expected_mask, _) = raw[0], standardised[0]
    np.testing.assert_allclose(volume.numpy(), expected_volume.numpy(), atol=1e-6)
    np.testing.assert_array_equal(mask.numpy(), expected_mask.numpy())
    assert volume.affine is not None and expected_volume.affine is not None
    np.testing.assert_allclose(volume.affine.numpy(), expected_volume.affine.numpy(), atol=1e-6)
