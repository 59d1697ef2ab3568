"""iBOT's masked-token distillation: masks, the loss against DINOv2's, no leak of masked voxels."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from eva_coralbay.models.encoder import CoralBayEncoder, upsample_mask
from eva_coralbay.pretraining import losses, masking
from eva_coralbay.pretraining.config import PretrainConfig
from eva_coralbay.pretraining.module import DINOPretraining
from tests.pretraining.lightning_steps import fit_on_crops


def _dinov2_forward_masked(
    student_patch_tokens_masked: torch.Tensor,
    teacher_patch_tokens_masked: torch.Tensor,
    student_masks_flat: torch.Tensor,
    student_temp: float,
) -> torch.Tensor:
    """facebookresearch/dinov2 `iBOTPatchLoss.forward_masked`, transcribed (masks_weight=None)."""
    t = teacher_patch_tokens_masked
    s = student_patch_tokens_masked
    loss = torch.sum(t * F.log_softmax(s / student_temp, dim=-1), dim=-1)
    masks_weight = (
        (1 / student_masks_flat.sum(-1).clamp(min=1.0))
        .unsqueeze(-1)
        .expand_as(student_masks_flat)[student_masks_flat]
    )
    loss = loss * masks_weight
    return -loss.sum() / student_masks_flat.shape[0]


def test_masked_token_loss_matches_dinov2() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = masking.sample_token_masks(6, (3, 3, 3), (0.1, 0.5), 0.5, generator)
    flat = masks.flatten(1)
    count = int(flat.sum())
    student = torch.randn(count, 32, generator=generator)
    teacher = torch.softmax(torch.randn(count, 32, generator=generator) / 0.07, -1)
    expected = _dinov2_forward_masked(student, teacher, flat, 0.1)
    actual = losses.ibot_cross_entropy(student, teacher, flat.nonzero()[:, 0], 6, 0.1)
    torch.testing.assert_close(actual, expected)


def test_masks_follow_dinov2s_rule() -> None:
    generator = torch.Generator().manual_seed(1)
    masks = masking.sample_token_masks(8, (3, 3, 4), (0.1, 0.5), 0.5, generator)
    assert masks.shape == (8, 3, 3, 4) and masks.dtype == torch.bool
    shares = sorted(float(m.float().mean()) for m in masks if m.any())
    assert len(shares) == 4  # round(8 x 0.5) crops masked, the rest not at all
    # The i-th masked crop draws from the i-th quarter of [0.1, 0.5] (36 positions each).
    for index, share in enumerate(shares):
        low, high = 0.1 + 0.1 * index, 0.2 + 0.1 * index
        assert low - 1 / 72 <= share <= high + 1 / 72
    assert not masking.sample_token_masks(3, (1, 1, 2), (0.1, 0.2), 0.0).any()
    tiny = masking.sample_token_masks(2, (1, 1, 2), (0.1, 0.2), 1.0)
    assert tiny.flatten(1).sum(1).tolist() == [1, 1]  # at least one position


def test_masked_voxels_reach_no_feature() -> None:
    torch.manual_seed(0)
    encoder = CoralBayEncoder(feature_size=12).train()
    mask_token = torch.randn(12)
    token_mask = torch.zeros(1, 2, 2, 3, dtype=torch.bool)
    token_mask[0, 1, 0, 2] = True  # one 32³ cell of a 64 x 64 x 96 crop
    patch_mask = upsample_mask(token_mask, 16)
    image = torch.rand(1, 1, 64, 64, 96)
    changed = image.clone()
    changed[:, :, 32:64, 0:32, 64:96] = torch.rand(1, 1, 32, 32, 32)  # inside the cell only
    with torch.no_grad():
        first = encoder.forward_features(image, patch_mask, mask_token)
        second = encoder.forward_features(changed, patch_mask, mask_token)
        unmasked = encoder.forward_features(changed)
        reference = encoder.forward_features(image)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert max((a - b).abs().max().item() for a, b in zip(unmasked, reference, strict=True)) > 1e-3


def test_tokens_average_to_the_multiscale_embedding() -> None:
    torch.manual_seed(0)
    encoder = CoralBayEncoder(feature_size=12).eval()
    with torch.no_grad():
        features = encoder.forward_features(torch.rand(2, 1, 64, 64, 96))
        tokens = encoder.multiscale_tokens(features)
        embedding = encoder.forward_multiscale(features)
    assert tokens.shape == (2, 12, 288)
    torch.testing.assert_close(tokens.mean(1), embedding, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("separate_head", "centering"), [(False, "ema"), (True, "sinkhorn")])
def test_ibot_steps_train_the_mask_token_and_log_the_loss(
    separate_head: bool, centering: str
) -> None:
    torch.manual_seed(0)
    config = PretrainConfig.from_dict(
        {
            "model": {"feature_size": 12},
            "head": {"hidden_dim": 32, "bottleneck_dim": 16, "out_dim": 64},
            "loss": {
                "ibot_weight": 1.0,
                "ibot_separate_head": separate_head,
                "ibot_out_dim": 48,
                "centering": centering,
            },
            "optim": {"lr_reference_batch": 2},
            "data": {"batch_size": 2, "samples_per_epoch": 2},
        }
    )
    module = DINOPretraining(config.to_dict())
    assert module.student.mask_token is not None
    assert (module.student.token_head is not None) == separate_head
    if separate_head:
        assert module.student.token_head.last_layer.out_features == 48  # type: ignore[union-attr]
    before = module.student.mask_token.detach().clone()
    logged: list[dict[str, float]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    generator = torch.Generator().manual_seed(0)
    crops = {
        "global_crops": torch.rand(2, 2, 1, 32, 64, 64, generator=generator),  # 1 x 2 x 2 cells
        "local_crops": torch.rand(2, 1, 1, 32, 32, 64, generator=generator),
    }
    fit_on_crops(module, crops, callbacks=[Record()])
    assert len(logged) == 1
    assert all(torch.isfinite(torch.tensor(step["train/ibot_loss"])) for step in logged)
    assert all(step["train/ibot_loss"] > 0 for step in logged)
    for step in logged:
        assert step["train/loss"] == pytest.approx(
            step["train/dino_loss"] + step["train/ibot_loss"]
        )
    assert not torch.equal(module.student.mask_token.detach(), before)
    # The exported teacher encoder is eva's architecture, iBOT or not.
    assert set(module.teacher.backbone.state_dict()) == set(
        CoralBayEncoder(feature_size=12).state_dict()
    )


def test_ibot_keys_without_ibot_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        PretrainConfig.from_dict({"loss": {"ibot_mask_probability": 0.3}})
    assert "loss.ibot_mask_probability set while loss.ibot_weight is 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        PretrainConfig.from_dict({"loss": {"ibot_weight": 0.5, "ibot_mask_probability": 0.3}})
    assert "ibot" not in caplog.text
    with pytest.raises(ValueError, match=r"loss\.ibot_mask_ratio"):
        PretrainConfig.from_dict({"loss": {"ibot_mask_ratio": [0.5, 0.1]}})
    off = DINOPretraining(PretrainConfig.from_dict({"model": {"feature_size": 12}}).to_dict())
    assert off.student.mask_token is None  # checkpoints without iBOT keep their keys
