"""The plugin's pieces the configs name: per-class Dice, the axial rotation, per-case names."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest
import torch
from eva.core.trainers import Trainer
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.metrics import MonaiDiceScore
from eva.vision.models.modules import SemanticSegmentationModule
from monai.losses.dice import DiceCELoss
from monai.metrics.meandice import DiceMetric
from torch import nn
from torch.utils import data as torch_data
from torchvision import tv_tensors

from eva_coralbay.data.profile import CORALBAY_PROFILE, EVA_RADIOLOGY_PROFILE
from eva_coralbay.evaluation import PerCaseScores, PerClassDiceScore, RandRotate90Axial
from eva_coralbay.evaluation.augmentations import axial_axes


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return nn.functional.one_hot(labels, num_classes).permute(0, 4, 1, 2, 3).float()


def _labels(seed: int, num_classes: int, shape: tuple[int, int, int] = (6, 7, 8)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (1, *shape), generator=generator)


def test_per_class_dice_of_one_case_is_monais_per_class_dice() -> None:
    prediction, reference = _labels(0, 3), _labels(1, 3)
    reference[reference == 2] = 1  # class 2 is absent from the reference: no Dice (NaN)
    metric = PerClassDiceScore(num_classes=4)
    metric.update(_one_hot(prediction, 4), _one_hot(reference, 4))
    scores = metric.compute()

    oracle = DiceMetric(include_background=True, reduction="none", num_classes=4)
    expected = oracle(_one_hot(prediction, 4), _one_hot(reference, 4))[0]
    assert scores.shape == (4,)  # eva's MonaiDiceScore leaves [1, 4] here
    torch.testing.assert_close(scores, expected, equal_nan=True)
    assert torch.isnan(scores[2]) and torch.isnan(scores[3])
    assert not torch.isnan(scores[:2]).any()


def test_per_class_dice_of_several_cases_is_evas() -> None:
    ours = PerClassDiceScore(num_classes=3)
    evas = MonaiDiceScore(num_classes=3, reduction="none", input_format="one-hot")
    for seed in range(3):
        prediction, reference = _one_hot(_labels(seed, 3), 3), _one_hot(_labels(seed + 10, 3), 3)
        ours.update(prediction, reference)
        evas.update(prediction, reference)
    torch.testing.assert_close(ours.compute(), evas.compute())


@pytest.mark.parametrize(
    ("orientation", "axes"), [("RAS", (0, 1)), ("SPL", (1, 2)), ("LPS", (0, 1)), ("AIR", (0, 2))]
)
def test_axial_axes_are_the_two_not_superior_inferior(
    orientation: str, axes: tuple[int, int]
) -> None:
    assert axial_axes(orientation) == axes


def test_axial_axes_need_one_longitudinal_axis() -> None:
    with pytest.raises(ValueError, match="no single superior-inferior axis"):
        axial_axes("RAP")


def test_rotation_turns_volume_and_mask_in_the_profiles_axial_plane() -> None:
    voxels = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    volume = eva_tv_tensors.Volume(voxels, affine=torch.eye(4, dtype=torch.float64))
    mask = tv_tensors.Mask(voxels.long())
    for profile, (first, second) in ((CORALBAY_PROFILE, (0, 1)), (EVA_RADIOLOGY_PROFILE, (1, 2))):
        transform = RandRotate90Axial(profile=profile, prob=1.0)
        rotated_volume, rotated_mask = transform(volume, mask)
        # Oracle: numpy's rot90 in the plane of the profile's axial axes ([C, ...] arrays).
        candidates = [np.rot90(voxels.numpy(), k, axes=(first + 1, second + 1)) for k in (1, 2, 3)]
        matches = [
            k
            for k, candidate in enumerate(candidates, start=1)
            if candidate.shape == tuple(rotated_volume.shape)
            and np.array_equal(candidate, rotated_volume.numpy())
        ]
        assert len(matches) == 1
        np.testing.assert_array_equal(rotated_mask.numpy(), candidates[matches[0] - 1])
        assert isinstance(rotated_volume, eva_tv_tensors.Volume)


class _NamedSlabs(torch_data.Dataset):
    """Random two-class slabs from a dataset that names its classes, as the adapters do."""

    classes = ["background", "liver"]

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self._images = torch.rand(2, 1, 8, 8, 8, generator=generator)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int):
        image = self._images[index]
        return image, (image > 0.5).long(), {"case_id": f"case_{index}"}


def test_per_case_class_names_come_from_the_dataset(tmp_path: pathlib.Path) -> None:
    module = SemanticSegmentationModule(
        decoder=nn.Conv3d(1, 2, kernel_size=1),
        criterion=DiceCELoss(to_onehot_y=True, softmax=True),
        spatial_dims=3,
    )
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        callbacks=[PerCaseScores()],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    trainer.validate(module, dataloaders=torch_data.DataLoader(_NamedSlabs(), batch_size=1))
    table = pd.read_parquet(pathlib.Path(trainer.default_log_dir) / "per_case_scores.parquet")
    assert list(table["case_id"]) == ["case_0", "case_1"]
    assert set(table["class"]) == {"liver"}
