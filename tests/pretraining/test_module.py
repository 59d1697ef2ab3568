import logging
import math
from types import SimpleNamespace

import pytest
import torch

from eva_coralbay.models import swin3d
from eva_coralbay.pretraining.config import OptimConfig, PretrainConfig
from eva_coralbay.pretraining.module import DINOPretraining, _collapse_signals


@pytest.fixture(scope="module")
def module() -> DINOPretraining:
    torch.manual_seed(0)
    config = PretrainConfig.from_dict(
        {
            "model": {"feature_size": 12},
            "head": {"hidden_dim": 32, "bottleneck_dim": 16, "out_dim": 64},
            "optim": {"freeze_last_layer_steps": 1},
        }
    )
    return DINOPretraining(config.to_dict())


def test_teacher_starts_as_a_frozen_copy_of_the_student(module: DINOPretraining) -> None:
    student, teacher = module.student.state_dict(), module.teacher.state_dict()
    assert student.keys() == teacher.keys()
    assert all(torch.equal(student[key], teacher[key]) for key in student)
    assert not any(parameter.requires_grad for parameter in module.teacher.parameters())
    assert module.student.head.prototype_magnitude().requires_grad is False


def test_update_teacher_is_an_exponential_moving_average() -> None:
    torch.manual_seed(1)
    config = PretrainConfig.from_dict(
        {"model": {"feature_size": 12}, "head": {"hidden_dim": 8, "bottleneck_dim": 4}}
    )
    module = DINOPretraining(config.to_dict())
    with torch.no_grad():
        for parameter in module.student.parameters():
            parameter.add_(torch.randn_like(parameter))
    before = {k: v.clone() for k, v in module.teacher.named_parameters()}
    student = dict(module.student.named_parameters())
    module.update_teacher(0.75)
    for name, parameter in module.teacher.named_parameters():
        torch.testing.assert_close(parameter, 0.75 * before[name] + 0.25 * student[name])


def test_biases_norms_and_position_bias_tables_are_not_decayed(module: DINOPretraining) -> None:
    optimizer = module.configure_optimizers()
    decayed, not_decayed = optimizer.param_groups
    assert decayed["weight_decay"] > 0 and not_decayed["weight_decay"] == 0
    names = {id(p): name for name, p in module.student.named_parameters()}
    decayed_names = [names[id(p)] for p in decayed["params"]]
    not_decayed_names = [names[id(p)] for p in not_decayed["params"]]
    assert all(p.ndim > 1 for p in decayed["params"])
    assert not any("relative_position_bias_table" in name for name in decayed_names)
    tables = [name for name in not_decayed_names if "relative_position_bias_table" in name]
    assert len(tables) == 8  # one per Swin block
    assert all(
        p.ndim == 1 or "relative_position_bias_table" in name
        for p, name in zip(not_decayed["params"], not_decayed_names, strict=True)
    )
    trainable = [p for p in module.student.parameters() if p.requires_grad]
    assert len(decayed["params"]) + len(not_decayed["params"]) == len(trainable)


def test_only_the_student_drops_paths() -> None:
    config = PretrainConfig.from_dict(
        {
            "model": {"feature_size": 12, "drop_path_rate": 0.2},
            "head": {"hidden_dim": 8, "bottleneck_dim": 4},
        }
    )
    module = DINOPretraining(config.to_dict())
    rates = [b.drop_path for b in module.student.modules() if isinstance(b, swin3d.SwinBlock)]
    assert rates == pytest.approx([0.2 * index / 7 for index in range(8)])  # Swin's linear rule
    assert [b.drop_path for b in module.teacher.modules() if isinstance(b, swin3d.SwinBlock)] == [
        0.0
    ] * 8


@pytest.mark.parametrize(
    ("scaling", "expected"),
    [("linear", 5e-4 * 32 / 256), ("sqrt", 5e-4 * 0.125**0.5), ("none", 5e-4)],
)
def test_peak_learning_rate_follows_the_global_batch(scaling: str, expected: float) -> None:
    optim = OptimConfig(lr=5e-4, lr_scaling=scaling, lr_reference_batch=256)
    assert optim.peak_lr(32) == pytest.approx(expected)


def test_an_unscaled_rate_far_from_its_reference_batch_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = PretrainConfig.from_dict(
        {
            "model": {"feature_size": 12},
            "head": {"hidden_dim": 8, "bottleneck_dim": 4},
            "optim": {"lr": 5e-4, "lr_scaling": "none", "lr_reference_batch": 256},
            "data": {"batch_size": 8},
        }
    )
    module = DINOPretraining(config.to_dict())
    module.trainer = SimpleNamespace(world_size=4)  # type: ignore[assignment]
    with caplog.at_level(logging.INFO):
        assert module._peak_lr() == 5e-4
    assert "global batch 32, 0.125x its reference batch 256" in caplog.text
    assert "the linear rule would give 6.25e-05" in caplog.text


def test_prototypes_get_no_update_while_the_last_layer_is_frozen(module: DINOPretraining) -> None:
    module.zero_grad()
    _, scores = module.student(torch.rand(1, 1, 32, 32, 64))
    scores.square().sum().backward()
    module.on_after_backward()  # step 0 < freeze_last_layer_steps
    assert all(p.grad is None for p in module.student.head.last_layer.parameters())
    assert all(p.grad is not None for p in module.student.head.mlp.parameters())
    assert all(p.grad is not None for p in module.student.backbone.encoder1.parameters())


def test_collapse_signals_tell_collapse_from_spread() -> None:
    uniform = torch.full((8, 16), 1 / 16)
    one_hot = torch.eye(16)[torch.arange(8) % 16]
    spread = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    collapsed = torch.ones(8, 32)

    signals = _collapse_signals(torch.tensor(math.log(16)), uniform, collapsed)
    assert signals["train/teacher_entropy"] == pytest.approx(math.log(16))
    assert signals["train/kl"] == pytest.approx(0.0, abs=1e-6)
    assert signals["train/embedding_std"] == pytest.approx(0.0, abs=1e-6)

    healthy = _collapse_signals(torch.tensor(3.0), one_hot, spread)
    assert healthy["train/teacher_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert healthy["train/teacher_batch_entropy"] == pytest.approx(math.log(8))
    assert 0.5 < healthy["train/embedding_std"] < 1.5
