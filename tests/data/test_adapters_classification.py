"""Classification adapters: MedMNIST-3D and organ patches, through eva's embeddings writer."""

from __future__ import annotations

import json
from pathlib import Path

import jsonargparse
import lightning.pytorch as pl
import medmnist
import numpy as np
import pandas as pd
import pytest
import torch
from eva.core.callbacks.writers.embeddings import ClassificationEmbeddingsWriter
from eva.core.models.modules import InferenceModule
from eva.vision.data.datasets.vision import VisionDataset
from torch import nn
from torch.utils.data import DataLoader

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters.organ_patches import crop_padded
from eva_coralbay.data.adapters.validation import DatasetValidationError
from eva_coralbay.data.synthetic.medmnist import write_npz
from tests.data.adapter_fixtures import FAST_PROFILE, NativeRoots, isolated_cache, native_roots

__all__ = ["isolated_cache", "native_roots"]


def _npz(root: Path, flag: str, num_classes: int, counts: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    splits = {
        split: (
            rng.integers(0, 256, size=(count, 28, 28, 28), dtype=np.uint8),
            rng.integers(0, num_classes, size=count),
        )
        for split, count in counts.items()
    }
    return write_npz(root / f"{flag}.npz", splits)


@pytest.mark.parametrize("adapter", [adapters.OrganMNIST3D, adapters.NoduleMNIST3D])
def test_medmnist_samples_match_medmnists_own_reader(
    adapter: type[adapters.OrganMNIST3D], tmp_path: Path
) -> None:
    _npz(tmp_path, adapter.flag, len(adapter.class_names()), {"train": 5, "val": 3, "test": 2})
    dataset = adapter(str(tmp_path), split="val", size=28, allow_incomplete=True)
    dataset.configure()
    dataset.validate()
    reference = getattr(medmnist, adapter.info()["python_class"])(
        split="val", root=str(tmp_path), size=28
    )
    assert len(dataset) == 3
    for index in range(3):
        volume, target, metadata = dataset[index]
        expected_image, expected_target = reference[index]
        assert volume.dtype == torch.float32 and tuple(volume.shape) == (1, 28, 28, 28)
        np.testing.assert_allclose(volume.numpy(), expected_image, rtol=1e-6)
        assert target.shape == () and int(target) == int(expected_target[0])
        assert metadata == {"index": index}
    assert [dataset.filename(i) for i in range(3)] == ["val_00000", "val_00001", "val_00002"]
    assert dataset.classes == [adapter.info()["label"][str(i)] for i in range(len(dataset.classes))]


def test_medmnist_validation_reports_counts_shapes_and_labels(tmp_path: Path) -> None:
    path = _npz(tmp_path, "organmnist3d", 13, {"train": 4})  # labels up to 12: two are not classes
    dataset = adapters.OrganMNIST3D(str(tmp_path), split="train", size=28)
    dataset.configure()
    with pytest.raises(DatasetValidationError) as error:
        dataset.validate()
    messages = [problem.message for problem in error.value.problems]
    assert any("train has 4 samples, the release 971" in m for m in messages)
    assert all(problem.path == str(path) for problem in error.value.problems)
    labels = error.value.problems[-1].message
    assert labels.startswith("labels [") and "are outside 0..10" in labels

    path.rename(tmp_path / "organmnist3d_64.npz")  # 28^3 volumes where 64^3 ones belong
    wrong_size = adapters.OrganMNIST3D(str(tmp_path), split="train", size=64, allow_incomplete=True)
    wrong_size.configure()
    with pytest.raises(DatasetValidationError, match=r"expected \(N, 64, 64, 64\)"):
        wrong_size.validate()


def _embed(datasets: list, output_dir: Path) -> pd.DataFrame:
    """Runs eva's classification embeddings writer over the datasets, as `eva predict` does."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv3d(1, 4, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    writer = ClassificationEmbeddingsWriter(
        output_dir=str(output_dir),
        backbone=backbone,
        dataloader_idx_map={index: f"split{index}" for index in range(len(datasets))},
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, callbacks=[writer], enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    loaders = [DataLoader(dataset, batch_size=3) for dataset in datasets]
    trainer.predict(
        InferenceModule(backbone=nn.Identity()), dataloaders=loaders, return_predictions=False
    )
    return pd.read_csv(output_dir / "manifest.csv")


def test_evas_embeddings_writer_writes_medmnist_and_organ_patch_embeddings(
    tmp_path: Path, native_roots: NativeRoots
) -> None:
    _npz(tmp_path, "organmnist3d", 11, {"test": 4})
    organs = adapters.OrganMNIST3D(str(tmp_path), split="test", size=28, allow_incomplete=True)
    organs.configure()
    source = adapters.BTCV(
        str(native_roots(adapters.BTCV)), split="train", profile=FAST_PROFILE, allow_incomplete=True
    )
    patches = adapters.OrganPatches(source, patch_size=12, min_voxels=5)
    patches.configure()

    manifest = _embed([organs, patches], tmp_path / "embeddings")

    assert len(manifest) == len(organs) + len(patches)
    assert set(manifest["origin"]) == {organs.filename(i) for i in range(len(organs))} | {
        patches.filename(i) for i in range(len(patches))
    }
    for embeddings_file in manifest["embeddings"]:
        saved = torch.load(tmp_path / "embeddings" / embeddings_file)
        assert isinstance(saved, list) and saved[0].shape == (4,)
    # The written target is the dataset's scalar target, row by row.
    first = manifest[manifest["split"] == "split0"].iloc[0]
    assert first["target"] == int(organs[0][1])


def test_organ_patches_are_centred_fixed_size_and_split_by_case(native_roots: NativeRoots) -> None:
    root = str(native_roots(adapters.BTCV))
    by_split = {}
    for split in ("train", "val"):
        source = adapters.BTCV(root, split=split, profile=FAST_PROFILE, allow_incomplete=True)
        dataset = adapters.OrganPatches(source, patch_size=(10, 12, 14), min_voxels=5)
        dataset.configure()
        dataset.validate()
        by_split[split] = dataset
        assert dataset.classes == list(adapters.BTCV.canonical_classes[1:])

        standards = [source.load_standard(i) for i in range(len(source))]
        for index, patch in enumerate(dataset.patches):
            volume, target, metadata = dataset[index]
            assert tuple(volume.shape) == (1, 10, 12, 14)
            assert dataset.classes[int(target)] == metadata["organ"]
            standard = standards[patch.case_index]
            organ = standard.label == patch.class_id
            # Oracle: the organ's bounding-box centre, computed independently of find_objects.
            coordinates = np.argwhere(organ)
            centre = (coordinates.min(0) + coordinates.max(0)) // 2
            assert tuple(int(c) for c in centre) == patch.centre
            assert patch.voxels == int(organ.sum())
            # The patch equals a crop of the zero-padded (air after scaling) standardised volume.
            padded = np.pad(standard.image, 20, constant_values=0.0)
            start = [c - s // 2 + 20 for c, s in zip(patch.centre, (10, 12, 14), strict=True)]
            expected = padded[
                tuple(slice(b, b + s) for b, s in zip(start, (10, 12, 14), strict=True))
            ]
            np.testing.assert_array_equal(volume[0].numpy(), expected)
            label_patch = crop_padded(standard.label, [b - 20 for b in start], (10, 12, 14), 0)
            assert (label_patch == patch.class_id).any()

    train_cases = {patch.case_id for patch in by_split["train"].patches}
    val_cases = {patch.case_id for patch in by_split["val"].patches}
    assert train_cases == {"img0001", "img0002"} and val_cases == {"img0035"}
    organs_in_val = {by_split["val"].filename(i).split("/")[1] for i in range(len(by_split["val"]))}
    assert organs_in_val <= set(adapters.BTCV.canonical_classes[1:]) and len(organs_in_val) >= 4


def test_organ_patches_need_a_profile_and_known_classes(native_roots: NativeRoots) -> None:
    root = str(native_roots(adapters.BTCV))
    with pytest.raises(ValueError, match="profile"):
        adapters.OrganPatches(adapters.BTCV(root, profile=None))
    with pytest.raises(ValueError, match="not in BTCV"):
        adapters.OrganPatches(adapters.BTCV(root, profile=FAST_PROFILE), classes=["brain"])


def test_organ_patches_from_an_eva_yaml_config(native_roots: NativeRoots) -> None:
    config = f"""
dataset:
  class_path: eva_coralbay.data.adapters.OrganPatches
  init_args:
    patch_size: 12
    min_voxels: 5
    source:
      class_path: eva_coralbay.data.adapters.BTCV
      init_args:
        root: {native_roots(adapters.BTCV)}
        split: val
        profile: {json.dumps(FAST_PROFILE.to_dict())}
        allow_incomplete: true
"""
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--dataset", type=VisionDataset)
    dataset = parser.instantiate(parser.parse_string(config)).dataset
    assert isinstance(dataset, adapters.OrganPatches)
    dataset.setup()
    assert {patch.case_id for patch in dataset.patches} == {"img0035"}
    assert tuple(dataset[0][0].shape) == (1, 12, 12, 12)
