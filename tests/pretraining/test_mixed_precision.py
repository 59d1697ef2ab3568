"""Pretraining in mixed precision: the head in float32, and whole steps under bf16 autocast."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from typing_extensions import override

from eva_coralbay.pretraining.config import PretrainConfig
from eva_coralbay.pretraining.head import DINOHead
from eva_coralbay.pretraining.module import DINOPretraining
from tests.pretraining.lightning_steps import fit_on_crops


def _relative_gap(first: torch.Tensor, second: torch.Tensor) -> float:
    return ((first.float() - second.float()).norm() / second.float().norm()).item()


def test_head_scores_are_float32_under_autocast() -> None:
    torch.manual_seed(0)
    head = DINOHead(288, out_dim=256, hidden_dim=64, bottleneck_dim=32)
    embeddings = torch.randn(4, 288).bfloat16()  # as a bf16 backbone would hand them over
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = head(embeddings)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, head(embeddings.float()), rtol=0, atol=0)


class _RecordStep(L.Callback):
    """Keeps the loss and the student's gradients of the first step."""

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None
        self.gradients: dict[str, torch.Tensor] = {}

    @override
    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        assert isinstance(pl_module, DINOPretraining)
        self.gradients = {
            name: parameter.grad.detach().clone()
            for name, parameter in pl_module.student.named_parameters()
            if parameter.grad is not None
        }

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.loss = outputs["loss"].detach()


def _one_step(
    precision: str, crops: dict[str, torch.Tensor]
) -> tuple[DINOPretraining, _RecordStep]:
    torch.manual_seed(0)
    config = PretrainConfig.from_dict(
        {
            "model": {"feature_size": 12, "drop_path_rate": 0.0},
            "head": {"hidden_dim": 64, "bottleneck_dim": 32, "out_dim": 256},
            "loss": {"koleo_weight": 0.1, "warmup_teacher_temp_steps": 0, "teacher_temp": 0.04},
            "optim": {"lr_scaling": "none", "lr_reference_batch": 2, "clip_grad": None},
            "data": {"batch_size": 2, "samples_per_epoch": 2},
        }
    )
    module = DINOPretraining(config.to_dict())
    record = _RecordStep()
    fit_on_crops(module, crops, precision=precision, callbacks=[record])
    return module, record


def test_a_bf16_mixed_step_matches_float32_where_the_step_is_well_posed() -> None:
    generator = torch.Generator().manual_seed(3)
    crops = {
        "global_crops": torch.rand(2, 2, 1, 32, 32, 64, generator=generator),
        "local_crops": torch.rand(2, 1, 1, 32, 32, 64, generator=generator),
    }
    exact_module, exact = _one_step("32-true", crops)
    mixed_module, mixed = _one_step("bf16-mixed", crops)
    assert exact.loss is not None and mixed.loss is not None
    # Measured: 3.32 (float32) vs 3.45. The gradients are compared in test_swin3d against
    # MONAI's own bf16 error, not here: at initialisation a DINO step is chaotic (instance
    # norms, a teacher sharpened at 0.04), and rounding only the crops to bf16 already moves
    # its float32 gradient by 50-70% (relative L2; bf16-mixed: 100-130%).
    assert abs(mixed.loss.item() - exact.loss.item()) <= 0.1 * exact.loss.item()
    assert mixed.gradients.keys() == exact.gradients.keys()  # every trainable parameter
    assert all(bool(torch.isfinite(g).all()) for g in mixed.gradients.values())
    silent = [name for name, g in mixed.gradients.items() if not g.any()]
    assert not silent, silent
    # Lightning's bf16-mixed keeps float32 weights, so the teacher's EMA and the export are too.
    assert all(p.dtype == torch.float32 for p in mixed_module.parameters())
    assert exact_module.student.head.last_layer.weight.dtype == torch.float32
