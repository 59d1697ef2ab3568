import pytest
import torch
import torch.nn.functional as F

from eva_coralbay.pretraining import losses


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_dino_cross_entropy_matches_torch_cross_entropy_over_pairs_of_different_views() -> None:
    student = list(_logits(5, 4, 16).unbind(0))  # 2 global + 3 local views
    teacher = [F.softmax(view / 0.04, dim=-1) for view in _logits(2, 4, 16, seed=1).unbind(0)]
    expected = [
        F.cross_entropy(student[s] / 0.1, teacher[t]) for t in range(2) for s in range(5) if s != t
    ]
    loss = losses.dino_cross_entropy(student, teacher, student_temp=0.1)
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_dino_cross_entropy_ignores_same_view_pairs() -> None:
    views = list(_logits(2, 3, 8).unbind(0))
    targets = [F.softmax(view, dim=-1) for view in views]
    # The student copies the teacher on view 0 only: only the cross-view pairs count.
    loss = losses.dino_cross_entropy([views[0], views[1]], targets, student_temp=1.0)
    expected = (F.cross_entropy(views[1], targets[0]) + F.cross_entropy(views[0], targets[1])) / 2
    torch.testing.assert_close(loss, expected)


def test_ema_center_follows_the_running_mean_and_removes_a_constant_offset() -> None:
    center = losses.EMACenter(out_dim=8, momentum=0.75)
    batches = [_logits(6, 8, seed=seed) for seed in range(3)]
    expected = torch.zeros(1, 8)
    for batch in batches:
        center.update(batch)
        expected = 0.75 * expected + 0.25 * batch.mean(dim=0, keepdim=True)
    torch.testing.assert_close(center.center, expected)

    # A prototype that scores high on every sample stops dominating once centred.
    offset = torch.zeros(8)
    offset[3] = 50.0
    biased = _logits(6, 8, seed=9) + offset
    fresh = losses.EMACenter(out_dim=8, momentum=0.0)
    fresh.update(biased)
    probs = fresh(biased, temperature=0.5)
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(6))
    assert probs[:, 3].mean() < 0.5
    uncentred = F.softmax(biased / 0.5, dim=-1)
    assert uncentred[:, 3].min() > 0.99


def test_ema_center_from_the_first_batch_centres_the_first_step_and_survives_a_reload() -> None:
    offset = torch.zeros(8)
    offset[3] = 50.0
    first = _logits(6, 8, seed=4) + offset
    center = losses.EMACenter(out_dim=8, momentum=0.9, init="first_batch")
    probs = center(first, temperature=0.5)
    torch.testing.assert_close(center.center, first.mean(dim=0, keepdim=True))
    torch.testing.assert_close(probs, F.softmax((first - first.mean(0, keepdim=True)) / 0.5, -1))
    assert probs[:, 3].mean() < 0.5
    # From zero the same batch is all prototype 3: the start the option avoids.
    assert losses.EMACenter(out_dim=8)(first, temperature=0.5)[:, 3].min() > 0.99

    center.update(first)
    second = _logits(6, 8, seed=5)
    resumed = losses.EMACenter(out_dim=8, momentum=0.9, init="first_batch")
    resumed.load_state_dict(center.state_dict())
    torch.testing.assert_close(resumed(second, 0.5), center(second, 0.5))
    torch.testing.assert_close(resumed.center, first.mean(dim=0, keepdim=True))
    # A center saved before the start option existed keeps running after a reload.
    older = {"center": center.center.clone()}
    reloaded = losses.EMACenter(out_dim=8, momentum=0.9, init="first_batch")
    reloaded.load_state_dict(older)
    torch.testing.assert_close(reloaded(second, 0.5), center(second, 0.5))
    with pytest.raises(ValueError, match="center init"):
        losses.EMACenter(out_dim=8, init="mean")


def test_sinkhorn_knopp_balances_prototypes_by_diagonal_scaling() -> None:
    logits = _logits(12, 4, seed=3)
    assignments = losses.sinkhorn_knopp(logits, temperature=0.5, iterations=200)
    torch.testing.assert_close(assignments.sum(dim=1), torch.ones(12))
    torch.testing.assert_close(assignments.sum(dim=0), torch.full((4,), 12 / 4))
    # Sinkhorn only rescales rows and columns of exp(logits / T): the log-ratio is additive.
    residual = torch.log(assignments) - logits / 0.5
    double_centred = (
        residual
        - residual.mean(dim=0, keepdim=True)
        - residual.mean(dim=1, keepdim=True)
        + residual.mean()
    )
    torch.testing.assert_close(double_centred, torch.zeros_like(residual), atol=1e-4, rtol=0)


def test_sinkhorn_knopp_survives_large_logits() -> None:
    logits = _logits(8, 16, seed=4) * 100
    assignments = losses.sinkhorn_knopp(logits, temperature=0.04)
    assert torch.isfinite(assignments).all()
    torch.testing.assert_close(assignments.sum(dim=1), torch.ones(8))


def test_koleo_is_minus_mean_log_nearest_neighbour_distance() -> None:
    embeddings = _logits(10, 5, seed=5)
    normalised = F.normalize(embeddings, dim=-1)
    distances = torch.cdist(normalised, normalised)
    distances.fill_diagonal_(float("inf"))
    expected = -torch.log(distances.min(dim=1).values).mean()
    torch.testing.assert_close(losses.koleo_loss(embeddings), expected, atol=1e-5, rtol=1e-5)


def test_koleo_penalises_clustered_embeddings() -> None:
    spread = torch.eye(6)
    clustered = torch.ones(6, 6) + 0.01 * _logits(6, 6, seed=6)
    assert losses.koleo_loss(clustered) > losses.koleo_loss(spread) + 1.0


def test_entropy_is_log_k_for_uniform_and_zero_for_one_hot() -> None:
    uniform = torch.full((2, 16), 1 / 16)
    one_hot = F.one_hot(torch.tensor([3, 7]), 16).float()
    torch.testing.assert_close(losses.entropy(uniform), torch.log(torch.tensor([16.0, 16.0])))
    torch.testing.assert_close(losses.entropy(one_hot), torch.zeros(2))


def test_koleo_under_autocast_picks_the_float32_nearest_neighbour() -> None:
    generator = torch.Generator().manual_seed(0)
    # Nearly equal embeddings, as a random encoder gives at initialisation.
    embeddings = torch.randn(1, 96, generator=generator) + 1e-3 * torch.randn(
        6, 96, generator=generator
    )
    expected = losses.koleo_loss(embeddings)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = losses.koleo_loss(embeddings)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, expected)
