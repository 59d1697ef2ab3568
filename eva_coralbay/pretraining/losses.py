"""DINO's losses: multi-crop cross-entropy, teacher centering (EMA or Sinkhorn-Knopp), KoLeo."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import distributed, nn
from typing_extensions import override


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums `tensor` over all processes in place (a no-op outside distributed runs)."""
    if distributed.is_available() and distributed.is_initialized():
        distributed.all_reduce(tensor)
    return tensor


def _world_size() -> int:
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_world_size()
    return 1


def dino_cross_entropy(
    student_logits: Sequence[torch.Tensor],
    teacher_probs: Sequence[torch.Tensor],
    student_temp: float,
) -> torch.Tensor:
    """DINO's loss: the teacher's distribution on each global view supervises every other view.

    Args:
        student_logits: (B, K) prototype scores of the student, one tensor per crop; the first
            `len(teacher_probs)` are the global crops, in the teacher's order.
        teacher_probs: (B, K) target distributions of the teacher, one per global crop.
        student_temp: Temperature of the student's softmax.

    Returns:
        The cross-entropy averaged over the batch and over all pairs of different views.
    """
    if len(student_logits) < 2 or not teacher_probs:
        raise ValueError(
            f"need at least 2 student views and 1 teacher view, got {len(student_logits)} "
            f"and {len(teacher_probs)}"
        )
    student_log_probs = [F.log_softmax(logits / student_temp, dim=-1) for logits in student_logits]
    total = student_logits[0].new_zeros(())
    pairs = 0
    for teacher_view, targets in enumerate(teacher_probs):
        for student_view, log_probs in enumerate(student_log_probs):
            if student_view == teacher_view:
                continue
            total = total + torch.sum(-targets * log_probs, dim=-1).mean()
            pairs += 1
    return total / pairs


def ibot_cross_entropy(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    sample_index: torch.Tensor,
    num_samples: int,
    student_temp: float,
) -> torch.Tensor:
    """The masked-token loss of iBOT, weighed as DINOv2's `iBOTPatchLoss.forward_masked`.

    The cross-entropy of every masked token is averaged within its crop; the crop means are
    summed and divided by the number of crops, masked or not (so with half the crops masked
    the loss is about half a masked crop's mean).

    Args:
        student_logits: (M, K) student scores of the M masked tokens (the student saw the mask).
        teacher_probs: (M, K) teacher targets for the same tokens (the teacher saw them).
        sample_index: (M,) the crop each token belongs to, in [0, num_samples).
        num_samples: Crops in the batch, masked or not.
        student_temp: Temperature of the student's softmax.
    """
    if student_logits.shape[0] == 0:
        return student_logits.new_zeros(())
    per_token = torch.sum(-teacher_probs * F.log_softmax(student_logits / student_temp, -1), -1)
    tokens_per_sample = torch.bincount(sample_index, minlength=num_samples).to(per_token.dtype)
    weights = 1.0 / tokens_per_sample[sample_index]
    return (per_token * weights).sum() / num_samples


class EMACenter(nn.Module):
    """DINO's centering: subtracts a running mean of the teacher's logits before sharpening.

    Centering stops one prototype from dominating; sharpening (a low temperature) stops the
    output from becoming uniform. The mean is taken over all processes.
    """

    center: torch.Tensor
    initialised: torch.Tensor

    def __init__(self, out_dim: int, momentum: float = 0.9, init: str = "zero") -> None:
        """Starts the center at zero, or at the first batch's mean.

        Args:
            out_dim: Number of prototypes.
            momentum: Weight of the old center in each update.
            init: 'zero' (DINO's) or 'first_batch'. From zero, a sharp teacher gives every crop
                the same one-hot target until the running mean catches up with the logits'
                common part, tens of steps in which the loss is near 0 only because teacher and
                student agree trivially; 'first_batch' centers from the first step on.
        """
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"center momentum must lie in [0, 1), got {momentum}")
        if init not in {"zero", "first_batch"}:
            raise ValueError(f"center init must be 'zero' or 'first_batch', got {init!r}")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        # A buffer, so that a resumed run does not re-initialise the center.
        self.register_buffer("initialised", torch.tensor(init == "zero"))
        # Reading the buffer costs a device sync: it is read once, at the first step after
        # construction or a reload, and then remembered.
        self._started = init == "zero"

    @override
    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before `init` existed hold a center that has been running.
        state_dict.setdefault(prefix + "initialised", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._started = False

    @override
    def forward(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Returns the teacher's target distributions softmax((logits - center) / temperature)."""
        if not self._started:
            if not bool(self.initialised):
                with torch.no_grad():
                    self.center.copy_(_global_mean(teacher_logits))
                    self.initialised.fill_(True)
            self._started = True
        return F.softmax((teacher_logits - self.center) / temperature, dim=-1)

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor) -> None:
        """Moves the center towards the mean of `teacher_logits` over the global batch."""
        self.center.mul_(self.momentum).add_(_global_mean(teacher_logits), alpha=1 - self.momentum)


def _global_mean(logits: torch.Tensor) -> torch.Tensor:
    """The (1, K) mean of `logits` over the samples of all processes."""
    batch_sum = all_reduce_sum(logits.detach().float().sum(dim=0, keepdim=True))
    return batch_sum / (logits.shape[0] * _world_size())


@torch.no_grad()
def sinkhorn_knopp(
    teacher_logits: torch.Tensor,
    temperature: float,
    iterations: int = 3,
    total_samples: int | None = None,
) -> torch.Tensor:
    """DINOv2's Sinkhorn-Knopp centering: balanced soft assignments of samples to prototypes.

    The result's rows are distributions (each sums to 1) whose column sums over the global batch
    are equal: every prototype receives the same total mass. Computed in log space so that low
    temperatures cannot overflow or underflow.

    Args:
        teacher_logits: (B, K) prototype scores of the teacher on this process.
        temperature: The teacher temperature.
        iterations: Alternating normalisation rounds.
        total_samples: Rows over all processes, where they differ between processes (masked
            tokens); by default this process's rows times the world size.

    Returns:
        (B, K) target distributions.
    """
    log_q = teacher_logits.float() / temperature
    num_prototypes = log_q.shape[1]
    num_samples = total_samples or log_q.shape[0] * _world_size()
    for _ in range(iterations):
        # Every prototype's mass over the global batch becomes 1/K ...
        log_q = log_q - _global_logsumexp_over_samples(log_q) - math.log(num_prototypes)
        # ... then every sample's mass becomes 1/B.
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(num_samples)
    return torch.exp(log_q + math.log(num_samples))


def _global_logsumexp_over_samples(log_q: torch.Tensor) -> torch.Tensor:
    """Log sum_b exp(log_q[b, k]) over the samples of all processes, as (1, K)."""
    peak = log_q.max(dim=0, keepdim=True).values
    if distributed.is_available() and distributed.is_initialized():
        distributed.all_reduce(peak, op=distributed.ReduceOp.MAX)
    total = all_reduce_sum(torch.exp(log_q - peak).sum(dim=0, keepdim=True))
    return peak + torch.log(total)


def koleo_loss(embeddings: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """DINOv2's KoLeo regulariser: -mean log distance of each embedding to its nearest neighbour.

    Minimising it spreads the L2-normalised embeddings of a batch uniformly.

    Args:
        embeddings: (B, D) embeddings, B >= 2.
        eps: Guards the normalisation and the logarithm.
    """
    if embeddings.shape[0] < 2:
        raise ValueError(f"KoLeo needs at least 2 embeddings, got {embeddings.shape[0]}")
    # Float32 with autocast off, as DINOv2's KoLeoLoss: under autocast the similarity matmul
    # would run in bf16, where the nearly equal embeddings of an initial batch all tie, and
    # argmax would pick an arbitrary neighbour instead of the nearest.
    with torch.autocast(embeddings.device.type, enabled=False):
        normalised = F.normalize(embeddings.float(), p=2, dim=-1, eps=eps)
        with torch.no_grad():
            similarities = normalised @ normalised.t()
            similarities.fill_diagonal_(-2.0)
            neighbours = similarities.argmax(dim=1)
        distances = F.pairwise_distance(normalised, normalised[neighbours], p=2, eps=eps)
        return -torch.log(distances + eps).mean()


def entropy(probs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Entropy in nats of each row of `probs` (B, K) -> (B,)."""
    return -(probs * torch.log(probs.clamp_min(eps))).sum(dim=-1)
