"""DINO self-distillation of a CoralBay encoder on its concatenated multi-scale embedding."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from eva_coralbay.models import swin3d
from eva_coralbay.models.architecture import SIZE_MULTIPLE, EncoderConfig
from eva_coralbay.models.encoder import CoralBayEncoder, upsample_mask
from eva_coralbay.pretraining import losses, masking
from eva_coralbay.pretraining.config import PretrainConfig
from eva_coralbay.pretraining.head import DINOHead
from eva_coralbay.pretraining.schedules import CosineSchedule, LinearWarmup

logger = logging.getLogger(__name__)

NO_WEIGHT_DECAY_KEYWORDS = ("relative_position_bias_table",)
"""Parameters never decayed besides biases and norms (Swin's `no_weight_decay_keywords`)."""

LR_RULE_TOLERANCE = 4.0
"""An unscaled learning rate used at a global batch this many times off its reference batch
gets a warning."""


class DINOBranch(nn.Module):
    """An encoder and a projection head: crops -> (multi-scale embedding, prototype scores).

    With iBOT it also holds the learnable mask token (at the patch embedding) and, optionally,
    a separate head for masked tokens.
    """

    def __init__(
        self,
        backbone: CoralBayEncoder,
        head: DINOHead,
        with_mask_token: bool = False,
        token_head: DINOHead | None = None,
    ) -> None:
        """Pairs the two.

        Args:
            backbone: A CoralBay encoder.
            head: The projection head on the 24·F embedding.
            with_mask_token: Whether the branch can see masked crops (iBOT): adds the mask
                token.
            token_head: A separate head for the 24·F tokens; None scores them with `head`.
        """
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.token_head = token_head
        self.mask_token: nn.Parameter | None = None
        if with_mask_token:
            self.mask_token = nn.Parameter(torch.zeros(backbone.feature_size))
            nn.init.trunc_normal_(self.mask_token, std=0.02)  # iBOT's initialisation

    @override
    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.backbone.embed_multiscale(crops)
        return embeddings, self.head(embeddings)

    def forward_tokens(
        self, crops: torch.Tensor, token_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings, their scores and the (B, N, 24F) tokens of the deepest grid.

        Args:
            crops: (B, C, D, H, W) crops, sides multiples of 32.
            token_mask: Optional (B, D/32, H/32, W/32) booleans: positions the branch sees
                masked (the mask token in the transformer, zeros in the conv stem).
        """
        patch_mask = None
        if token_mask is not None:
            # A masked position is a cell of the deepest grid (iBOT on Swin masks whole cells of
            # the last stage, whose tokens carry the loss): SIZE_MULTIPLE voxels a side.
            patch_mask = upsample_mask(token_mask, SIZE_MULTIPLE // swin3d.PATCH_SIZE)
        features = self.backbone.forward_features(crops, patch_mask, self.mask_token)
        embeddings = self.backbone.forward_multiscale(features)
        return embeddings, self.head(embeddings), self.backbone.multiscale_tokens(features)

    def score_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(M, 24F) tokens -> (M, K) prototype scores, by the token head or the shared one."""
        return (self.token_head or self.head)(tokens)


class DINOPretraining(L.LightningModule):
    """Student and EMA teacher CoralBay encoders with DINO heads, trained by self-distillation.

    Per step: the teacher sees the two global crops, the student all crops; the student's
    distribution on each view matches the teacher's (centred and sharpened) distribution on
    every other global view. The teacher follows the student by an exponential moving average.
    All schedules (lr, weight decay, teacher momentum and temperature) advance per step and span
    `trainer.max_steps`.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        """Builds student, teacher and centering.

        Args:
            config: A `PretrainConfig` as plain containers (kept in checkpoints for export).
        """
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = PretrainConfig.from_dict(config, source="checkpoint hyper-parameters")
        self.encoder_config = EncoderConfig(
            feature_size=self.config.model.feature_size,
            use_v2=self.config.model.use_v2,
            in_channels=self.config.model.in_channels,
        )
        head, loss = self.config.head, self.config.loss

        def projection_head(out_dim: int) -> DINOHead:
            return DINOHead(
                self.encoder_config.embedding_dim,
                out_dim=out_dim,
                hidden_dim=head.hidden_dim,
                bottleneck_dim=head.bottleneck_dim,
                num_layers=head.num_layers,
                norm_last_layer=head.norm_last_layer,
                use_bn=head.use_bn,
            )

        self.ibot = loss.ibot_weight > 0
        ibot_out_dim = loss.ibot_out_dim or head.out_dim
        self.student = DINOBranch(
            CoralBayEncoder.from_config(
                self.encoder_config, drop_path_rate=self.config.model.drop_path_rate
            ),
            projection_head(head.out_dim),
            with_mask_token=self.ibot,
            token_head=(
                projection_head(ibot_out_dim) if self.ibot and loss.ibot_separate_head else None
            ),
        )
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        for block in self.teacher.modules():
            if isinstance(block, swin3d.SwinBlock):
                block.drop_path = 0.0  # the teacher always sees the whole network
        self.center = (
            losses.EMACenter(head.out_dim, loss.center_momentum, loss.center_init)
            if loss.centering == "ema"
            else None
        )
        # The masked tokens' targets are centred on their own, as in iBOT and DINOv2.
        token_out_dim = ibot_out_dim if loss.ibot_separate_head else head.out_dim
        self.token_center = (
            losses.EMACenter(token_out_dim, loss.center_momentum, loss.center_init)
            if self.ibot and loss.centering == "ema"
            else None
        )
        self._schedules: dict[str, Any] = {}
        self._momentum = self.config.optim.momentum_teacher

    @override
    def on_fit_start(self) -> None:
        total = self.trainer.max_steps
        if total is None or total <= 0:
            raise ValueError("pretraining needs trainer.max_steps > 0: the schedules span it")
        optim, loss = self.config.optim, self.config.loss
        peak_lr = self._peak_lr()
        self._schedules = {
            "lr": CosineSchedule(peak_lr, optim.min_lr, total, optim.warmup_steps),
            "weight_decay": CosineSchedule(optim.weight_decay, optim.weight_decay_end, total),
            "momentum": CosineSchedule(optim.momentum_teacher, optim.momentum_teacher_end, total),
            "teacher_temp": LinearWarmup(
                loss.warmup_teacher_temp, loss.teacher_temp, loss.warmup_teacher_temp_steps
            ),
        }

    def _peak_lr(self) -> float:
        """The peak learning rate at this run's global batch, logged.

        An unscaled rate used far from the batch it was given for gets a warning.
        """
        optim = self.config.optim
        global_batch = self.config.data.batch_size * self.trainer.world_size
        peak_lr = optim.peak_lr(global_batch)
        logger.info(
            f"peak learning rate {peak_lr:.3g}: optim.lr {optim.lr:.3g} at global batch "
            f"{optim.lr_reference_batch}, scaled '{optim.lr_scaling}' to global batch "
            f"{global_batch}"
        )
        ratio = global_batch / optim.lr_reference_batch
        if optim.lr_scaling == "none" and not 1 / LR_RULE_TOLERANCE < ratio < LR_RULE_TOLERANCE:
            logger.warning(
                f"optim.lr {optim.lr:.3g} is used unscaled at global batch {global_batch}, "
                f"{ratio:.3g}x its reference batch {optim.lr_reference_batch}: the linear rule "
                f"would give {optim.lr * ratio:.3g}, the square-root rule "
                f"{optim.lr * math.sqrt(ratio):.3g} (set optim.lr_scaling)"
            )
        return peak_lr

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        decayed, not_decayed = [], []
        for name, parameter in self.student.named_parameters():
            if not parameter.requires_grad:
                continue
            # DINO's rule: biases and norm scales (all 1-D parameters) are not decayed; nor,
            # as in Swin, the relative-position bias tables.
            if (
                name.endswith(".bias")
                or parameter.ndim <= 1
                or any(keyword in name for keyword in NO_WEIGHT_DECAY_KEYWORDS)
            ):
                not_decayed.append(parameter)
            else:
                decayed.append(parameter)
        return torch.optim.AdamW(
            [
                {"params": decayed, "weight_decay": self.config.optim.weight_decay},
                {"params": not_decayed, "weight_decay": 0.0},
            ],
            lr=self.config.optim.lr,
        )

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        optimizer = self.trainer.optimizers[0]
        optimizer.param_groups[0]["lr"] = optimizer.param_groups[1]["lr"] = self._value("lr", step)
        optimizer.param_groups[0]["weight_decay"] = self._value("weight_decay", step)
        self._momentum = self._value("momentum", step)

    @override
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_config = self.config.loss
        global_crops = _crop_major(batch["global_crops"])
        teacher_temp = self._value("teacher_temp", self.global_step)
        token_mask = teacher_tokens = None
        with torch.no_grad():
            if self.ibot:
                teacher_embeddings, teacher_logits, teacher_tokens = self.teacher.forward_tokens(
                    global_crops
                )
            else:
                teacher_embeddings, teacher_logits = self.teacher(global_crops)
            teacher_logits = teacher_logits.float()
            if self.center is not None:
                teacher_probs = self.center(teacher_logits, teacher_temp)
            else:
                teacher_probs = losses.sinkhorn_knopp(
                    teacher_logits, teacher_temp, loss_config.sinkhorn_iterations
                )

        if self.ibot:
            grid = tuple(side // SIZE_MULTIPLE for side in global_crops.shape[2:])
            token_mask = masking.sample_token_masks(
                global_crops.shape[0],
                grid,  # type: ignore[arg-type]
                tuple(loss_config.ibot_mask_ratio),  # type: ignore[arg-type]
                loss_config.ibot_mask_probability,
            ).to(global_crops.device)
            student_embeddings, student_global, student_tokens = self.student.forward_tokens(
                global_crops, token_mask
            )
        else:
            student_embeddings, student_global = self.student(global_crops)
        student_logits = list(student_global.float().chunk(2))
        if "local_crops" in batch:
            num_local = batch["local_crops"].shape[1]
            _, student_local = self.student(_crop_major(batch["local_crops"]))
            student_logits += list(student_local.float().chunk(num_local))

        dino_loss = losses.dino_cross_entropy(
            student_logits, list(teacher_probs.chunk(2)), loss_config.student_temp
        )
        loss = dino_loss
        metrics: dict[str, Any] = {}
        if loss_config.koleo_weight > 0:
            koleo = sum(losses.koleo_loss(chunk) for chunk in student_embeddings.chunk(2)) / 2
            loss = loss + loss_config.koleo_weight * koleo
            metrics["train/koleo"] = koleo
        if token_mask is not None and teacher_tokens is not None:
            ibot_loss = self._ibot_loss(student_tokens, teacher_tokens, token_mask, teacher_temp)
            loss = loss + loss_config.ibot_weight * ibot_loss
            metrics["train/ibot_loss"] = ibot_loss
        if self.center is not None:
            self.center.update(teacher_logits)

        metrics.update(
            _collapse_signals(dino_loss.detach(), teacher_probs, teacher_embeddings.detach())
        )
        metrics.update(
            {
                "train/loss": loss.detach(),
                "train/dino_loss": dino_loss.detach(),
                "train/lr": self._value("lr", self.global_step),
                "train/weight_decay": self._value("weight_decay", self.global_step),
                "train/teacher_momentum": self._momentum,
                "train/teacher_temp": teacher_temp,
            }
        )
        batch_size = batch["global_crops"].shape[0]
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=batch_size)
        progress = {
            "loss": metrics["train/loss"],
            "H_t": metrics["train/teacher_entropy"],
            "kl": metrics["train/kl"],
            "std": metrics["train/embedding_std"],
        }
        self.log_dict(progress, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return loss

    def _ibot_loss(
        self,
        student_tokens: torch.Tensor,
        teacher_tokens: torch.Tensor,
        token_mask: torch.Tensor,
        teacher_temp: float,
    ) -> torch.Tensor:
        """The masked tokens' loss: the teacher (unmasked view) supervises the student."""
        loss_config = self.config.loss
        flat_mask = token_mask.flatten(1)
        sample_index = flat_mask.nonzero()[:, 0]
        student_logits = self.student.score_tokens(student_tokens[flat_mask]).float()
        with torch.no_grad():
            teacher_logits = self.teacher.score_tokens(teacher_tokens[flat_mask]).float()
            if self.token_center is not None:
                teacher_probs = self.token_center(teacher_logits, teacher_temp)
                if teacher_logits.shape[0] > 0:
                    self.token_center.update(teacher_logits)
            else:
                # Processes may mask different numbers of tokens: count them all.
                total = losses.all_reduce_sum(flat_mask.sum().reshape(1))
                teacher_probs = losses.sinkhorn_knopp(
                    teacher_logits,
                    teacher_temp,
                    loss_config.sinkhorn_iterations,
                    total_samples=int(total.item()),
                )
        return losses.ibot_cross_entropy(
            student_logits,
            teacher_probs,
            sample_index,
            flat_mask.shape[0],
            loss_config.student_temp,
        )

    @override
    def on_after_backward(self) -> None:
        if self.global_step < self.config.optim.freeze_last_layer_steps:
            # DINO: the prototypes stay put while the rest of the network settles.
            for parameter in self.student.head.last_layer.parameters():
                parameter.grad = None

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.update_teacher(self._momentum)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """Moves every teacher parameter: teacher <- m * teacher + (1 - m) * student."""
        for teacher, student in zip(
            self.teacher.parameters(), self.student.parameters(), strict=True
        ):
            teacher.lerp_(student.detach(), 1.0 - momentum)

    def _value(self, name: str, step: int) -> float:
        if not self._schedules:
            raise RuntimeError("the schedules are built when fitting starts")
        return float(self._schedules[name](step))


def _crop_major(crops: torch.Tensor) -> torch.Tensor:
    """(B, V, C, D, H, W) -> (V·B, C, D, H, W), grouped by view so `.chunk(V)` splits views."""
    return crops.transpose(0, 1).flatten(0, 1)


def _collapse_signals(
    dino_loss: torch.Tensor, teacher_probs: torch.Tensor, teacher_embeddings: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Signals that reveal the two collapses DINO can fall into.

    - `teacher_entropy`: mean entropy of the teacher's targets; log(K) means uniform collapse.
    - `teacher_batch_entropy`: entropy of the batch-mean target; near 0 means one prototype wins.
    - `kl`: mean KL(teacher || student); 0 means the student has nothing left to learn.
    - `embedding_std`: std over the batch of the L2-normalised teacher embeddings, times
      sqrt(dims): about 1 for well-spread embeddings, 0 when all crops map to one point.
    """
    teacher_entropy = losses.entropy(teacher_probs).mean()
    batch_entropy = losses.entropy(teacher_probs.mean(dim=0, keepdim=True)).mean()
    normalised = F.normalize(teacher_embeddings.float(), dim=-1)
    dims = normalised.shape[-1]
    std = normalised.std(dim=0).mean() * math.sqrt(dims) if normalised.shape[0] > 1 else None
    signals = {
        "train/teacher_entropy": teacher_entropy,
        "train/teacher_batch_entropy": batch_entropy,
        # Every teacher view is paired with the same number of student views, so the mean
        # cross-entropy minus the mean teacher entropy is the mean KL divergence.
        "train/kl": dino_loss - teacher_entropy,
    }
    signals["train/embedding_std"] = std if std is not None else torch.zeros(())
    return signals
