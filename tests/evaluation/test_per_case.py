import pathlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from eva.core.trainers import Trainer
from eva.vision.models.modules import SemanticSegmentationModule
from monai.losses.dice import DiceCELoss
from torch import nn
from torch.utils import data as torch_data

from eva_coralbay.evaluation import PerCaseScores
from eva_coralbay.leaderboard import case_scores
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
