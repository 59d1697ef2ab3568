"""The pretraining configuration: typed dataclasses read from YAML plus `key=value` overrides."""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eva_coralbay.models.architecture import input_size_problems

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
"""Accepted `trainer.precision`: the teacher's EMA and the optimiser state stay in float32, so
Lightning's "-true" half precisions (weights in 16 bits) are not offered."""

LR_SCALINGS = ("linear", "sqrt", "none")
"""Accepted `optim.lr_scaling`: how `optim.lr`, given at `optim.lr_reference_batch`, follows the
global batch."""


IBOT_SETTINGS = (
    "ibot_mask_ratio",
    "ibot_mask_probability",
    "ibot_separate_head",
    "ibot_out_dim",
)
"""The iBOT keys that do nothing while `loss.ibot_weight` is 0."""

logger = logging.getLogger(__name__)


def _default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _check_choice(key: str, value: Any, accepted: Sequence[str]) -> None:
    if value not in accepted:
        raise ValueError(f"{key} must be one of {', '.join(accepted)}; got {value!r}")


@dataclasses.dataclass
class ModelConfig:
    """The CoralBay encoder being trained (its multi-scale embedding has 24·F dimensions)."""

    feature_size: int = 48
    """Channels of the first stage (F), a multiple of 12."""

    use_v2: bool = True
    """Whether each Swin stage has SwinUNETR-v2's extra residual convolution block."""

    in_channels: int = 1
    """Input channels (1 for CT)."""

    drop_path_rate: float = 0.0
    """The student's stochastic depth at the last Swin block (linear from 0 at the first);
    the teacher never drops. 0 keeps the encoder exactly eva's SwinUNETR."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


@dataclasses.dataclass
class HeadConfig:
    """The DINO projection head: MLP -> bottleneck -> weight-normalised prototypes."""

    hidden_dim: int = 2048
    """Width of the MLP's hidden layers."""

    bottleneck_dim: int = 256
    """Width of the L2-normalised bottleneck fed to the prototypes."""

    out_dim: int = 65536
    """Number of prototypes (the dimension of the distributions student and teacher match)."""

    num_layers: int = 3
    """Linear layers of the MLP (1 maps the embedding straight to the bottleneck)."""

    norm_last_layer: bool = True
    """Whether the prototypes' weight-norm magnitude stays fixed at 1 (DINO's stabiliser)."""

    use_bn: bool = False
    """Batch-normalise the MLP's hidden layers (DINO's `use_bn_in_head`; synchronised across
    processes). Pooled multi-scale embeddings differ little between crops, and without it a
    small-batch run can drift to uniform teacher outputs."""


@dataclasses.dataclass
class LossConfig:
    """Temperatures, centering and the KoLeo regulariser."""

    student_temp: float = 0.1
    """Temperature of the student's softmax."""

    teacher_temp: float = 0.07
    """Temperature of the teacher's softmax after the warm-up."""

    warmup_teacher_temp: float = 0.04
    """Teacher temperature at step 0, raised linearly to `teacher_temp`."""

    warmup_teacher_temp_steps: int = 0
    """Steps of the teacher-temperature warm-up."""

    centering: str = "ema"
    """'ema' (subtract an exponential moving average of the teacher logits) or 'sinkhorn'."""

    center_momentum: float = 0.9
    """Momentum of the EMA center."""

    center_init: str = "zero"
    """Start of the EMA center: 'zero' (DINO's) or 'first_batch' (the first batch's mean)."""

    sinkhorn_iterations: int = 3
    """Sinkhorn-Knopp normalisation rounds when `centering` is 'sinkhorn'."""

    koleo_weight: float = 0.0
    """Weight of the KoLeo regulariser on the student's global-crop embeddings (0 disables it)."""

    ibot_weight: float = 0.0
    """Weight of iBOT's masked-token distillation (DINOv2's second loss); 0 disables it."""

    ibot_mask_ratio: list[float] = dataclasses.field(default_factory=lambda: [0.1, 0.5])
    """[low, high] share of a masked global crop's token positions that are masked; the masked
    crops of a batch spread evenly over the range (DINOv2's rule)."""

    ibot_mask_probability: float = 0.5
    """Share of the global crops that are masked at all."""

    ibot_separate_head: bool = False
    """Score masked tokens with their own head (and center) instead of the DINO head."""

    ibot_out_dim: int | None = None
    """Prototypes of the separate iBOT head (default: head.out_dim)."""

    def __post_init__(self) -> None:
        """Rejects unknown centering methods or starts, non-positive temperatures, bad masks."""
        if self.centering not in {"ema", "sinkhorn"}:
            raise ValueError(f"loss.centering must be 'ema' or 'sinkhorn', got {self.centering!r}")
        if self.center_init not in {"zero", "first_batch"}:
            raise ValueError(
                f"loss.center_init must be 'zero' or 'first_batch', got {self.center_init!r}"
            )
        for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            if getattr(self, name) <= 0:
                raise ValueError(f"loss.{name} must be positive, got {getattr(self, name)}")
        ratio = self.ibot_mask_ratio
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1] < 1:
            raise ValueError(
                f"loss.ibot_mask_ratio must be [low, high] with 0 < low <= high < 1: {ratio}"
            )
        if not 0 <= self.ibot_mask_probability <= 1:
            raise ValueError(
                f"loss.ibot_mask_probability must lie in [0, 1], got {self.ibot_mask_probability}"
            )
        if self.ibot_weight < 0:
            raise ValueError(f"loss.ibot_weight must be >= 0, got {self.ibot_weight}")
        if self.ibot_weight == 0:
            defaults = LossConfig.__dataclass_fields__
            changed = [
                f"loss.{name}"
                for name in IBOT_SETTINGS
                if getattr(self, name) != _default_of(defaults[name])
            ]
            if changed:
                logger.warning(
                    f"{', '.join(changed)} set while loss.ibot_weight is 0: iBOT is off, so "
                    "they do nothing (set loss.ibot_weight > 0 to use them)"
                )


@dataclasses.dataclass
class OptimConfig:
    """AdamW with per-step cosine schedules, the teacher's EMA and gradient handling."""

    lr: float = 5e-4
    """Peak learning rate (reached after `warmup_steps`) at `lr_reference_batch`."""

    lr_scaling: str = "linear"
    """How the peak learning rate follows the global batch B (per-device batch x devices x
    nodes): 'linear' lr·B/ref (DINO, DINOv2), 'sqrt' lr·sqrt(B/ref), 'none' lr as given."""

    lr_reference_batch: int = 256
    """The global batch `lr` is given for (DINO's 256)."""

    min_lr: float = 1e-6
    """Learning rate at the last step."""

    warmup_steps: int = 0
    """Steps of linear learning-rate warm-up from 0."""

    weight_decay: float = 0.04
    """Weight decay at step 0 (biases and norm parameters are never decayed)."""

    weight_decay_end: float = 0.4
    """Weight decay at the last step (cosine schedule)."""

    momentum_teacher: float = 0.996
    """EMA momentum of the teacher at step 0."""

    momentum_teacher_end: float = 1.0
    """EMA momentum of the teacher at the last step (cosine schedule)."""

    clip_grad: float | None = 3.0
    """Gradient-norm clipping threshold; None disables clipping."""

    freeze_last_layer_steps: int = 0
    """Steps during which the prototypes (head's last layer) receive no updates."""

    def __post_init__(self) -> None:
        _check_choice("optim.lr_scaling", self.lr_scaling, LR_SCALINGS)
        if self.lr_reference_batch < 1:
            raise ValueError(
                f"optim.lr_reference_batch must be >= 1, got {self.lr_reference_batch}"
            )

    def peak_lr(self, global_batch: int) -> float:
        """The peak learning rate at a global batch, by `lr_scaling`."""
        ratio = global_batch / self.lr_reference_batch
        if self.lr_scaling == "linear":
            return self.lr * ratio
        if self.lr_scaling == "sqrt":
            return self.lr * math.sqrt(ratio)
        return self.lr


@dataclasses.dataclass
class CropConfig:
    """3D multi-crop: 2 global and `num_local` local crops per scan, each augmented."""

    global_size: Any = 96
    """Global crops' side in voxels at the profile's spacing: an int (cube) or [x, y, z]."""

    global_zoom: list[float] = dataclasses.field(default_factory=lambda: [0.8, 1.25])
    """Range of the region side / crop side ratio of global crops (1 keeps the spacing)."""

    num_local: int = 4
    """Local crops per scan (0 trains on the two global views only)."""

    local_size: Any = 64
    """Local crops' side in voxels: an int (cube) or [x, y, z]."""

    local_zoom: list[float] = dataclasses.field(default_factory=lambda: [0.4, 0.8])
    """Range of the region side / crop side ratio of local crops (< 1 zooms in)."""

    view_spread: float = 0.25
    """Each view's centre lies within this fraction of the global crop size from the sample's
    anchor (per axis), so that all views of a sample overlap."""

    foreground_hu: float = -500.0
    """Voxels above this HU are body; crop centres are drawn from body voxels."""

    pad_to_crop: bool = False
    """Pad scans smaller than a crop region with air instead of rejecting them."""

    flip_prob: float = 0.5
    """Probability of flipping each axis."""

    rot90_prob: float = 0.5
    """Probability of a random multiple of 90° rotation in the axial plane."""

    window_center_jitter: float = 150.0
    """The HU window's centre moves uniformly by up to this many HU per crop."""

    window_width_scale: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.5])
    """Range of the factor applied to the HU window's width per crop."""

    intensity_scale: float = 0.1
    """Multiplicative intensity jitter (MONAI RandScaleIntensity factor)."""

    intensity_shift: float = 0.1
    """Additive intensity jitter (MONAI RandShiftIntensity offset)."""

    noise_prob: float = 0.2
    """Probability of Gaussian noise."""

    noise_std: float = 0.02
    """Standard deviation of the Gaussian noise (on the [0, 1] scale)."""

    blur_prob: float = 0.2
    """Probability of Gaussian smoothing."""

    def __post_init__(self) -> None:
        """Rejects crop sizes the encoder cannot train on and malformed ranges."""
        self.global_size = _crop_shape("crops.global_size", self.global_size)
        self.local_size = _crop_shape("crops.local_size", self.local_size)
        if self.rot90_prob > 0:
            for name, shape in (("global_size", self.global_size), ("local_size", self.local_size)):
                if shape[0] != shape[1]:
                    raise ValueError(
                        f"crops.{name}={shape}: rot90 turns the axial (x, y) plane, so x and y "
                        "must be equal (or set crops.rot90_prob=0)"
                    )
        for name in ("global_zoom", "local_zoom", "window_width_scale"):
            bounds = getattr(self, name)
            if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
                raise ValueError(f"crops.{name} must be [low, high] with 0 < low <= high: {bounds}")
        if self.view_spread < 0:
            raise ValueError(f"crops.view_spread must be >= 0, got {self.view_spread}")
        if self.num_local < 0:
            raise ValueError(f"crops.num_local must be >= 0, got {self.num_local}")


def _crop_shape(name: str, size: Any) -> list[int]:
    """Checks a crop size (an int or three ints) and returns it as [x, y, z]."""
    shape = [size] * 3 if isinstance(size, int) else list(size)
    if len(shape) != 3 or not all(isinstance(side, int) and side > 0 for side in shape):
        raise ValueError(f"{name} must be a positive int or three positive ints, got {size!r}")
    problems = input_size_problems(shape)
    if problems:
        raise ValueError(f"{name}={size!r}: " + "; ".join(problems))
    return shape


@dataclasses.dataclass
class DataConfig:
    """Unlabeled CT: where it is, how it is standardised and cached, and how it is batched."""

    paths: list[str] = dataclasses.field(default_factory=list)
    """Files, folders, globs or manifests (.csv/.parquet with a `path` column, .txt) of CT."""

    profile: str = "radiology/coralbay"
    """The model whose preprocessing profile applies: orientation, spacing and the HU window
    that crops are jittered around."""

    skip_bad: bool = False
    """Skip unreadable or too small scans (all reported at once) instead of failing."""

    cache_dir: str | None = None
    """Where standardised volumes are kept as memory-mapped arrays; None keeps them in memory."""

    batch_size: int = 8
    """Scans per step and device (each gives 2 global and `num_local` local crops)."""

    num_workers: int = 4
    """DataLoader worker processes per device."""

    samples_per_epoch: int = 1024
    """Multi-crop samples per epoch (scans are revisited with fresh crops)."""

    def __post_init__(self) -> None:
        """Rejects batch settings that would give no batch at all."""
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.samples_per_epoch < self.batch_size:
            raise ValueError(
                f"data.samples_per_epoch ({self.samples_per_epoch}) must be at least "
                f"data.batch_size ({self.batch_size})"
            )
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")


@dataclasses.dataclass
class TrainerConfig:
    """Lightning trainer settings."""

    max_steps: int = 100_000
    """Optimiser steps; the schedules span exactly this many."""

    accelerator: str = "auto"
    """Lightning accelerator ('cpu', 'gpu', 'auto')."""

    devices: Any = "auto"
    """Devices per node (an int, a list of ids or 'auto')."""

    num_nodes: int = 1
    """Nodes in a multi-node run."""

    strategy: str = "auto"
    """Lightning strategy ('ddp' for several devices; 'auto' picks it)."""

    precision: str = "auto"
    """'auto' uses bf16 mixed precision on GPUs that support it and float32 elsewhere;
    '32-true', 'bf16-mixed' (CPU too) and '16-mixed' (GPU) ask for one."""

    log_every_n_steps: int = 10
    """How often the loss and collapse signals are logged."""

    checkpoint_every_n_steps: int = 500
    """How often `last.ckpt` is refreshed."""

    progress_bar: str = "rich"
    """'rich', 'tqdm' or 'none'."""

    seed: int = 0
    """Seed of the weights' initialisation and of the crops."""

    def __post_init__(self) -> None:
        _check_choice("trainer.precision", self.precision, PRECISIONS)


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run needs; the YAML files mirror this structure."""

    output: str = "outputs/pretrain"
    """Folder of checkpoints, logs and the resolved config; a rerun resumes from it."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    crops: CropConfig = dataclasses.field(default_factory=CropConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        """Rejects batch-normalised heads that would see a single crop."""
        if self.head.use_bn and self.data.batch_size * min(2, self.crops.num_local or 2) < 2:
            raise ValueError(
                "head.use_bn needs at least 2 crops per forward pass: raise data.batch_size or "
                "crops.num_local"
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as plain Python containers (for YAML and checkpoints)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """Returns the config as YAML."""
        return OmegaConf.to_yaml(OmegaConf.structured(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> PretrainConfig:
        """Builds a config from nested mappings, checking every key and type.

        Raises:
            ValueError: For unknown keys, values of the wrong type and invalid settings.
        """
        return _merge([values], source=source)


def load_config(
    path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()
) -> PretrainConfig:
    """Reads a YAML config and applies `section.key=value` overrides.

    Args:
        path: The YAML file; the defaults alone when None.
        overrides: Dotted overrides such as `optim.lr=1e-4` or `data.paths=[a.nii.gz]`.

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: For unknown keys, values of the wrong type and invalid settings.
    """
    layers: list[Any] = []
    source = "defaults"
    if path is not None:
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretraining config not found: {path}")
        try:
            layers.append(OmegaConf.load(path))
        except Exception as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from error
        source = str(path)
    if overrides:
        malformed = [item for item in overrides if "=" not in item]
        if malformed:
            raise ValueError(f"overrides must look like section.key=value, got {malformed}")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
    return _merge(layers, source=source)


def _merge(layers: Sequence[Any], *, source: str) -> PretrainConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PretrainConfig), *layers)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        key = getattr(error, "full_key", None)
        raise ValueError(f"{source}: {message}" + (f" (at {key})" if key else "")) from error
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    assert isinstance(config, PretrainConfig)
    return config
