import pathlib
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from eva.core.metrics import BinaryClassificationMetrics, MetricsSchema
from eva.core.models.modules import HeadModule
from eva.core.models.modules.utils.batch_postprocess import BatchPostProcess
from eva.core.models.transforms import AsDiscrete
from eva.core.trainers import Trainer
from eva.vision.models.modules import SemanticSegmentationModule
from monai.losses.dice import DiceCELoss
from torch import nn
from torch.utils import data as torch_data
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.segmentation import DiceScore

from eva_coralbay.evaluation import PerCaseScores
from eva_coralbay.leaderboard import LeaderboardError, case_scores
from eva_coralbay.leaderboard.metrics import METRICS

# TotalSegmentator v2 ids of the organs kept in this 4-class task.
ORGANS = {1: "spleen", 2: "kidney_right", 5: "liver"}
CLASS_NAMES = ["background", *ORGANS.values()]


def _load(path: pathlib.Path) -> nib.Nifti1Image:
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image)
    return image


class _RealCrops(torch_data.Dataset):
    """Slabs of TotalSegmentator's reference scan A with its spleen, right kidney and liver."""

    def __init__(self, totalsegmentator_dir: pathlib.Path) -> None:
        scan = _load(totalsegmentator_dir / "example_ct.nii.gz").get_fdata(dtype=np.float32)
        labels = np.asarray(
            _load(totalsegmentator_dir / "example_seg_fast_force_split.nii.gz").dataobj
        )
        remapped = np.zeros(labels.shape, dtype=np.int64)
        for new_index, total_id in enumerate(ORGANS, start=1):
            remapped[labels == total_id] = new_index
        image = np.clip((scan[::2, ::2, ::2] + 1000) / 2000, 0, 1)
        target = remapped[::2, ::2, ::2]
        self._slabs = [(image[..., z : z + 16], target[..., z : z + 16]) for z in (8, 24, 40)]

    def __len__(self) -> int:
        return len(self._slabs)

    def __getitem__(self, index: int):
        image, target = self._slabs[index]
        return torch.from_numpy(image)[None], torch.from_numpy(target)[None], {}

    def filename(self, index: int) -> str:
        return f"scan_a_slab_{index}.nii.gz"


def _dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    denominator = prediction.sum() + reference.sum()
    return float("nan") if denominator == 0 else 2 * (prediction & reference).sum() / denominator


def test_per_case_dice_matches_direct_computation(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    torch.manual_seed(0)
    dataset = _RealCrops(totalsegmentator_dir)
    module = SemanticSegmentationModule(
        decoder=nn.Conv3d(1, len(CLASS_NAMES), kernel_size=3, padding=1),
        criterion=DiceCELoss(to_onehot_y=True, softmax=True),
        spatial_dims=3,
    )
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        callbacks=[PerCaseScores(class_names=CLASS_NAMES)],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    trainer.validate(module, dataloaders=torch_data.DataLoader(dataset, batch_size=2))

    session_file = pathlib.Path(trainer.default_log_dir) / "per_case_scores.parquet"
    table = pd.read_parquet(session_file)
    assert (pathlib.Path(trainer.default_log_dir) / "run_0" / "per_case_scores.parquet").exists()
    assert len(table) == len(dataset) * len(ORGANS)
    assert set(table["stage"]) == {"val"} and set(table["run"]) == {0}
    assert set(table["dataset_size"]) == {len(dataset)} and set(table["world_size"]) == {1}
    assert table["score"].notna().sum() >= len(dataset)
    # The leaderboard accepts the file as a submission's per-case scores.
    case_scores.check_file(session_file, METRICS["dice"])
    by_case = case_scores.load_scores(session_file, stage="val")
    assert by_case.shape == (len(dataset), len(ORGANS))

    module.eval()
    with torch.no_grad():
        for index in range(len(dataset)):
            image, target, _ = dataset[index]
            predicted = module.decoder(image[None]).argmax(dim=1)[0].numpy()
            rows = table[table["case_id"] == dataset.filename(index)].set_index("class_index")
            for class_index, name in enumerate(CLASS_NAMES[1:], start=1):
                expected = _dice(predicted == class_index, target[0].numpy() == class_index)
                assert rows.loc[class_index, "class"] == name
                assert rows.loc[class_index, "score"] == pytest.approx(expected, nan_ok=True)


def test_scores_during_fit_are_not_recorded(tmp_path: pathlib.Path) -> None:
    callback = PerCaseScores()
    images = torch.rand(2, 1, 8, 8, 8)
    targets = (images > 0.5).long()
    dataset = torch_data.TensorDataset(images, targets, torch.zeros(2))
    module = SemanticSegmentationModule(
        decoder=nn.Conv3d(1, 2, kernel_size=1),
        criterion=DiceCELoss(to_onehot_y=True, softmax=True),
        spatial_dims=3,
    )
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        callbacks=[callback],
        logger=False,
        accelerator="cpu",
        max_epochs=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    loader = torch_data.DataLoader(dataset, batch_size=1)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert trainer.fit_loop.epoch_loop.val_loop.batch_progress.total.completed == len(dataset)
    assert not list(pathlib.Path(tmp_path).rglob("per_case_scores.parquet"))


class _PredictedCrops(torch_data.Dataset):
    """The real slabs with a fixed prediction as a second channel (read by `_LabelsAsLogits`).

    The prediction is the reference without the spleen, the kidney moved 3 voxels and the liver
    1: slab 0 has no organ in either (every class NaN), slab 1 no spleen in either (one class
    NaN), slab 2 a missed spleen (Dice 0) and two imperfect organs.
    """

    def __init__(self, crops: _RealCrops) -> None:
        self._items = []
        for index in range(len(crops)):
            image, target, _ = crops[index]
            predicted = torch.where(target == 1, 0, target)
            kidney, liver = (predicted == 2), (predicted == 3)
            predicted = torch.where(kidney | liver, 0, predicted)
            predicted[torch.roll(kidney, 3, dims=1)] = 2
            predicted[torch.roll(liver, 1, dims=2)] = 3
            self._items.append((torch.cat([image, predicted.float()]), target))
        self.filename = crops.filename

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int):
        image, target = self._items[index]
        return image, target, {}


class _LabelsAsLogits(nn.Module):
    """A decoder whose logits pick the label map in the input's second channel."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.unused = nn.Parameter(torch.zeros(()))  # the optimiser eva builds needs one

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        labels = images[:, 1].long()
        one_hot = nn.functional.one_hot(labels, self.num_classes).movedim(-1, 1)
        return 10.0 * one_hot.float() + 0 * self.unused


def _validate(
    module: pl.LightningModule,
    dataset: torch_data.Dataset,
    root: pathlib.Path,
    batch_size: int,
    **kwargs: Any,
) -> tuple[Mapping[str, float], pathlib.Path]:
    """Runs eva's final validation with the per-case callback; eva's metrics and the file."""
    trainer = Trainer(
        default_root_dir=str(root),
        callbacks=[PerCaseScores(**kwargs)],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    loader = torch_data.DataLoader(dataset, batch_size=batch_size)
    (logged,) = trainer.validate(module, dataloaders=loader, verbose=False)
    return logged, pathlib.Path(trainer.default_log_dir) / "per_case_scores.parquet"


def test_leaderboard_dice_is_evas_published_dice(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    num_classes = len(CLASS_NAMES)
    module = SemanticSegmentationModule(
        decoder=_LabelsAsLogits(num_classes),
        criterion=DiceCELoss(to_onehot_y=True, softmax=True),
        spatial_dims=3,
        # The shipped segmentation configs' metric and post-processing.
        metrics=MetricsSchema(
            evaluation=DiceScore(
                num_classes=num_classes,
                include_background=False,
                average="macro",
                input_format="one-hot",
            )
        ),
        postprocess=BatchPostProcess(
            predictions_transforms=[AsDiscrete(argmax=True, to_onehot=num_classes)],
            targets_transforms=[AsDiscrete(to_onehot=num_classes)],
        ),
    )
    dataset = _PredictedCrops(_RealCrops(totalsegmentator_dir))
    logged, path = _validate(module, dataset, tmp_path, batch_size=2, class_names=CLASS_NAMES)

    scores = case_scores.load_scores(path, stage="val")
    by_case = scores.to_numpy()
    # The cases the docstring of `_PredictedCrops` promises: all NaN, spleen NaN, spleen 0.
    assert np.isnan(by_case[0]).all()
    assert np.isnan(scores.at["scan_a_slab_1.nii.gz", "spleen"])
    assert scores.at["scan_a_slab_2.nii.gz", "spleen"] == 0.0
    published = logged["val/DiceScore"]
    assert METRICS["dice"].estimate(by_case) == pytest.approx(published, abs=1e-6)
    # The class-first mean, which the tie test used to resample, is another number here.
    assert abs(METRICS["balanced_accuracy"].estimate(by_case) - published) > 0.05


def _organ_patches(totalsegmentator_dir: pathlib.Path) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3x3 intensity patches of the real scan at voxels of each organ (unequal counts)."""
    scan = _load(totalsegmentator_dir / "example_ct.nii.gz").get_fdata(dtype=np.float32)
    labels = np.asarray(_load(totalsegmentator_dir / "example_seg_fast_force_split.nii.gz").dataobj)
    generator = np.random.default_rng(0)
    features, targets = [], []
    for target, (total_id, count) in enumerate(zip(ORGANS, (30, 20, 50), strict=True)):
        voxels = np.argwhere(labels[1:-1, 1:-1, 1:-1] == total_id) + 1
        for x, y, z in voxels[generator.choice(len(voxels), count, replace=False)]:
            features.append(scan[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2].ravel() / 1000)
            targets.append(target)
    return torch.from_numpy(np.stack(features)), torch.tensor(targets)


def _centroid_head(features: torch.Tensor, targets: torch.Tensor) -> nn.Linear:
    """A nearest-centroid classifier as a linear head: right often, wrong sometimes."""
    centroids = torch.stack([features[targets == k].mean(dim=0) for k in targets.unique()])
    head = nn.Linear(features.shape[1], len(centroids))
    with torch.no_grad():
        head.weight.copy_(centroids)
        head.bias.copy_(-0.5 * (centroids**2).sum(dim=1))
    return head


def test_leaderboard_balanced_accuracy_is_evas_published_number(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    features, targets = _organ_patches(totalsegmentator_dir)
    dataset = torch_data.TensorDataset(features, targets, torch.zeros(len(targets)))
    organs = list(ORGANS.values())

    # Multiclass: eva's tasks score MulticlassAccuracy(average="macro").
    head = _centroid_head(features, targets)
    module = HeadModule(
        head=head,
        criterion=nn.CrossEntropyLoss(),
        metrics=MetricsSchema(
            evaluation=MulticlassAccuracy(num_classes=len(organs), average="macro")
        ),
    )
    logged, path = _validate(module, dataset, tmp_path / "multiclass", 16, class_names=organs)
    predicted = head(features).argmax(dim=1)
    assert 0 < (predicted != targets).sum() < len(targets) // 2  # some errors, not chance
    by_case = case_scores.load_scores(path, stage="val").to_numpy()
    published = logged["val/MulticlassAccuracy"]
    assert METRICS["balanced_accuracy"].estimate(by_case) == pytest.approx(published, abs=1e-6)
    # Unequal class sizes: balanced accuracy is not the plain accuracy.
    assert abs(published - (predicted == targets).float().mean().item()) > 0.01

    # Binary (liver or not): eva's BinaryBalancedAccuracy from one logit.
    liver = (targets == 2).float()
    binary_head = nn.Linear(features.shape[1], 1)
    with torch.no_grad():
        weights = _centroid_head(features, (targets == 2).long())
        binary_head.weight.copy_(100 * (weights.weight[1] - weights.weight[0])[None])
        binary_head.bias.copy_(100 * (weights.bias[1] - weights.bias[0])[None])
    module = HeadModule(
        head=binary_head,
        criterion=nn.BCEWithLogitsLoss(),
        metrics=MetricsSchema(common=BinaryClassificationMetrics()),
    )
    binary = torch_data.TensorDataset(features, liver, torch.zeros(len(liver)))
    names = ["other", "liver"]
    logged, path = _validate(module, binary, tmp_path / "binary", 16, class_names=names)
    by_case = case_scores.load_scores(path, stage="val").to_numpy()
    published = logged["val/BinaryBalancedAccuracy"]
    assert METRICS["balanced_accuracy"].estimate(by_case) == pytest.approx(published, abs=1e-6)


def _segmentation_module() -> SemanticSegmentationModule:
    torch.manual_seed(0)
    return SemanticSegmentationModule(
        decoder=nn.Conv3d(1, len(CLASS_NAMES), kernel_size=3, padding=1),
        criterion=DiceCELoss(to_onehot_y=True, softmax=True),
        spatial_dims=3,
    )


def test_a_file_without_every_case_of_the_dataset_is_refused(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    # What process 0 of a 2-device run evaluates: every other case.
    dataset = _RealCrops(totalsegmentator_dir)
    sampler = torch_data.DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=False)
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        callbacks=[PerCaseScores(class_names=CLASS_NAMES)],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    loader = torch_data.DataLoader(dataset, batch_size=1, sampler=sampler)
    trainer.validate(_segmentation_module(), dataloaders=loader, verbose=False)
    path = pathlib.Path(trainer.default_log_dir) / "per_case_scores.parquet"
    with pytest.raises(LeaderboardError) as error:
        case_scores.check_file(path, METRICS["dice"])
    message = str(error.value)
    assert message.startswith(f"{path}: invalid per-case score file")
    assert "run 0, stage val, dataloader 0 scored 2 of the dataset's 3 cases, 1 missing" in message


@pytest.mark.slow(expected_s=40)
def test_a_two_process_run_writes_a_file_the_leaderboard_refuses(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    # Two CPU processes (gloo): process 0 writes only its own cases. Before the callback asked
    # every process for eva's broadcast `log_dir`, process 0 waited in it for the others and
    # the run failed.
    dataset = _RealCrops(totalsegmentator_dir)
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        callbacks=[PerCaseScores(class_names=CLASS_NAMES)],
        logger=False,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    loader = torch_data.DataLoader(dataset, batch_size=1)
    trainer.validate(_segmentation_module(), dataloaders=loader, verbose=False)
    (path,) = pathlib.Path(tmp_path).glob("*/per_case_scores.parquet")
    table = pd.read_parquet(path)
    assert set(table["world_size"]) == {2} and set(table["dataset_size"]) == {len(dataset)}
    with pytest.raises(LeaderboardError, match="process 0 of a 2-process run") as error:
        case_scores.check_file(path, METRICS["dice"])
    assert str(error.value).startswith(str(path))
    assert "2 of the dataset's 3 cases, 1 missing" in str(error.value)
