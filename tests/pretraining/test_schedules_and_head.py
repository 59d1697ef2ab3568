import itertools
import math

import pytest
import torch

from eva_coralbay.pretraining.head import DINOHead
from eva_coralbay.pretraining.schedules import CosineSchedule, LinearWarmup


def test_cosine_schedule_runs_from_base_to_final_along_a_half_cosine() -> None:
    schedule = CosineSchedule(base=1.0, final=0.1, total_steps=101)
    values = [schedule(step) for step in range(101)]
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1)
    assert values[50] == pytest.approx(0.55)
    assert values[25] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))
    assert schedule(500) == pytest.approx(0.1)


def test_cosine_schedule_warms_up_linearly() -> None:
    schedule = CosineSchedule(base=2.0, final=0.0, total_steps=20, warmup_steps=4)
    assert [schedule(step) for step in range(5)] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert schedule(19) == pytest.approx(0.0)


def test_cosine_schedule_can_rise() -> None:
    momentum = CosineSchedule(base=0.996, final=1.0, total_steps=10)
    values = [momentum(step) for step in range(10)]
    assert values[0] == pytest.approx(0.996) and values[-1] == pytest.approx(1.0)
    assert values == sorted(values)


def test_cosine_schedule_rejects_a_warmup_longer_than_the_run() -> None:
    with pytest.raises(ValueError, match=r"warmup_steps"):
        CosineSchedule(base=1.0, final=0.0, total_steps=5, warmup_steps=6)


def test_linear_warmup_of_the_teacher_temperature() -> None:
    temperature = LinearWarmup(start=0.04, end=0.07, warmup_steps=3)
    assert [temperature(step) for step in range(5)] == pytest.approx([0.04, 0.05, 0.06, 0.07, 0.07])
    assert LinearWarmup(start=0.04, end=0.07, warmup_steps=0)(0) == pytest.approx(0.07)


def test_dino_head_prototypes_are_unit_vectors_with_a_frozen_magnitude() -> None:
    head = DINOHead(in_dim=24, out_dim=32, hidden_dim=16, bottleneck_dim=8, num_layers=3)
    scores = head(torch.randn(5, 24))
    assert scores.shape == (5, 32)
    weight = head.last_layer.weight
    assert isinstance(weight, torch.Tensor)
    torch.testing.assert_close(weight.norm(dim=1), torch.ones(32))
    # Normalised bottleneck and unit prototypes: every score is a cosine similarity.
    assert scores.abs().max() <= 1.0 + 1e-5

    scores.sum().backward()
    assert head.prototype_magnitude().grad is None
    assert all(p.grad is not None for p in head.mlp.parameters())


def test_dino_head_magnitude_trains_without_norm_last_layer() -> None:
    head = DINOHead(in_dim=12, out_dim=8, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    head(torch.randn(3, 12)).sum().backward()
    assert head.prototype_magnitude().grad is not None


def test_dino_head_with_one_layer_maps_straight_to_the_bottleneck() -> None:
    head = DINOHead(in_dim=12, out_dim=8, bottleneck_dim=4, num_layers=1)
    assert isinstance(head.mlp, torch.nn.Linear) and head.mlp.out_features == 4
