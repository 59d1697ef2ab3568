import math

import pytest
import torch

from eva_coralbay.pretraining.config import PretrainConfig
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


def test_biases_and_norms_are_not_decayed(module: DINOPretraining) -> None:
    optimizer = module.configure_optimizers()
    decayed, not_decayed = optimizer.param_groups
    assert decayed["weight_decay"] > 0 and not_decayed["weight_decay"] == 0
    assert all(parameter.ndim > 1 for parameter in decayed["params"])
    assert all(parameter.ndim == 1 for parameter in not_decayed["params"])
    trainable = [p for p in module.student.parameters() if p.requires_grad]
    assert len(decayed["params"]) + len(not_decayed["params"]) == len(trainable)


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
