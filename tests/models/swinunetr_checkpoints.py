"""Small SwinUNETR-family modules saved in the key layouts that real published checkpoints use.

Each layout follows the code that writes (or, for eva, reads) the real file:
- VoCo `VoCo_{B,L,H}_SSL_head.pt`: a flat v2 state dict of the encoder (eva's voco.py loads it
  strictly into SwinUNETREncoder); VoCo's training checkpoint holds the `Swin` module as
  `backbone.` beside the `student.`/`teacher.` projection heads (Large-Scale-Medical
  Self-supervised/models/voco_head.py).
- SuPreM: `{"net": {"module.backbone.<SwinUNETR v1>", "module.precls_conv...", ...}}`
  (SuPreM's Universal_model under DataParallel; eva's suprem.py).
- CLIP-driven Universal Model: `{"net": {"module.<SwinUNETR v1>", heads...}}` as eva's
  universal.py reads it (`key.split("module.")[1]`), with the text-conditioned heads.
- MONAI SSL `model_swinvit.pt`: `{"state_dict": {"module.patch_embed...", "module.layers1.0..."}}`
  (SwinUNETR.load_from reads exactly these keys), plus the SSLHead's rotation, contrastive and
  reconstruction heads; the research-contributions pre-training checkpoint names the
  transformer `swin_vit`.
- MONAI's `ssl_pretrained_weights.pth` (Disruptive Autoencoders):
  `{"model": {"encoder.patch_embed...", "encoder.layers1.0.0.blocks...", "encoder.mask_token",
  "encoder.norm...", "out.conv..."}}`, the inverse of MONAI's `filter_swinunetr`.
- DINO / Lightning: `{"state_dict": {"teacher.backbone...", "student.backbone...", heads}}`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder
from monai.networks.nets.swin_unetr import SwinTransformer, SwinUNETR
from torch import nn

FEATURE_SIZE = 12
# The smallest input whose deepest map (1/32 of the input) still has two voxels, which the
# instance norm of encoder10 needs.
INPUT_SHAPE = (1, 1, 64, 32, 32)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def perturb(module: ModuleT, seed: int) -> ModuleT:
    """Moves every floating tensor off its default initialisation (ones, zeros) so that two
    swapped tensors of equal shape cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return module.eval()


def eva_encoder(feature_size: int = FEATURE_SIZE, use_v2: bool = True, seed: int = 0) -> Any:
    """eva's SwinUNETREncoder with random weights: the oracle for every layout."""
    torch.manual_seed(seed)
    return perturb(SwinUNETREncoder(feature_size=feature_size, use_v2=use_v2), seed)


@functools.cache
def shared_eva_encoder(feature_size: int = FEATURE_SIZE, use_v2: bool = True) -> Any:
    """One encoder per architecture, built once: building MONAI's Swin takes seconds. Read only."""
    return eva_encoder(feature_size, use_v2, seed=feature_size + use_v2)


@functools.cache
def monai_swinunetr(use_v2: bool = False) -> nn.Module:
    """MONAI's full SwinUNETR (encoder, decoder1-5 and out), as fine-tuned checkpoints hold it.

    Built once per variant; read only."""
    torch.manual_seed(int(use_v2))
    model = SwinUNETR(in_channels=1, out_channels=3, feature_size=FEATURE_SIZE, use_v2=use_v2)
    return perturb(model, int(use_v2))


def random_input(seed: int = 0) -> torch.Tensor:
    return torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))


@functools.cache
def reference_maps(source: Any) -> tuple[torch.Tensor, ...]:
    """The six maps of a source module on `random_input()` (only the transformer's map, index
    4, is meaningful for a bare transformer), computed once per source."""
    tensor = random_input()
    with torch.no_grad():
        if hasattr(source, "encoder1"):
            return tuple(feature_maps(source, tensor))
        hidden = source.swinViT(tensor)
        return (hidden[0], hidden[1], hidden[2], hidden[3], hidden[3], hidden[4])


def feature_maps(holder: Any, tensor: torch.Tensor) -> list[torch.Tensor]:
    """The six maps eva's SwinUNETREncoder computes, from any module with its submodules."""
    hidden = holder.swinViT(tensor)
    return [
        holder.encoder1(tensor),
        holder.encoder2(hidden[0]),
        holder.encoder3(hidden[1]),
        holder.encoder4(hidden[2]),
        hidden[3],
        holder.encoder10(hidden[4]),
    ]


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{key}": value for key, value in state_dict.items()}


def encoder_part(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys of a full SwinUNETR that eva's encoder holds."""
    roots = ("swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10.")
    return {key: value for key, value in state_dict.items() if key.startswith(roots)}


def universal_heads(prefix: str, feature_size: int = FEATURE_SIZE) -> dict[str, torch.Tensor]:
    """The text-conditioned dynamic heads of the Universal Model / SuPreM (small shapes)."""
    heads = nn.ModuleDict(
        {
            "precls_conv": nn.Sequential(
                nn.GroupNorm(4, feature_size), nn.ReLU(), nn.Conv3d(feature_size, 8, 1)
            ),
            "GAP": nn.Sequential(
                nn.GroupNorm(4, 16 * feature_size),
                nn.ReLU(),
                nn.AdaptiveAvgPool3d(1),
                nn.Conv3d(16 * feature_size, 16, 1),
            ),
            "controller": nn.Conv3d(32, 153, 1),
            "text_to_vision": nn.Linear(32, 16),
        }
    )
    state = prefixed(prefix, heads.state_dict())
    state[f"{prefix}organ_embedding"] = torch.randn(5, 32)
    return state


def ssl_heads(prefix: str, dim: int) -> dict[str, torch.Tensor]:
    """The SSLHead's rotation, contrastive and reconstruction heads (research-contributions)."""
    heads = nn.ModuleDict(
        {
            "rotation_head": nn.Linear(dim, 4),
            "contrastive_head": nn.Linear(dim, 512),
            "conv": nn.Sequential(nn.Conv3d(dim, dim // 2, 3), nn.InstanceNorm3d(dim // 2)),
        }
    )
    return prefixed(prefix, heads.state_dict())


class Layout:
    """A checkpoint in one real layout and the module whose encoder it holds.

    The suffix decides how it is written: `.safetensors`, a torch file, or (empty suffix) a
    CoralBay Hugging Face style folder written by the exporter.
    """

    def __init__(
        self,
        name: str,
        build: Callable[[], tuple[Any, Any]],
        *,
        feature_size: int = FEATURE_SIZE,
        use_v2: bool,
        suffix: str = ".pt",
        transformer_only: bool = False,
    ) -> None:
        self.name = name
        self.build = build
        self.feature_size = feature_size
        self.use_v2 = use_v2
        self.suffix = suffix
        self.transformer_only = transformer_only

    def __repr__(self) -> str:
        return self.name


def _voco(feature_size: int) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        source = shared_eva_encoder(feature_size, use_v2=True)
        return source.state_dict(), source

    return build


def _voco_training() -> tuple[Any, Any]:
    source = shared_eva_encoder(use_v2=True)
    state = prefixed("backbone.", source.state_dict())
    projection = nn.Sequential(nn.Linear(24 * FEATURE_SIZE, 64), nn.Linear(64, 64))
    state |= prefixed("student.layer1.", projection.state_dict())
    state |= prefixed("teacher.layer1.", projection.state_dict())
    return {"state_dict": state, "epoch": 3}, source


def _suprem() -> tuple[Any, Any]:
    source = monai_swinunetr(use_v2=False)
    net = prefixed("module.backbone.", source.state_dict()) | universal_heads("module.")
    return {"net": net, "epoch": 2100}, source


def _universal() -> tuple[Any, Any]:
    source = monai_swinunetr(use_v2=False)
    net = prefixed("module.", source.state_dict()) | universal_heads("module.")
    return {"net": net, "epoch": 500}, source


def _monai_ssl_disruptive_autoencoder() -> tuple[Any, Any]:
    swin = _swin_transformer(seed=4)
    # The inverse of monai.networks.nets.swin_unetr.filter_swinunetr: one more level per stage.
    state = {
        "encoder." + key.replace(".0.", ".0.0.", 1)
        if key.startswith("layers")
        else f"encoder.{key}": value
        for key, value in swin.state_dict().items()
    }
    dim = 16 * FEATURE_SIZE
    state |= {
        "encoder.mask_token": torch.zeros(1, 1, FEATURE_SIZE),
        "encoder.norm.weight": torch.ones(dim),
        "encoder.norm.bias": torch.zeros(dim),
        "out.conv.conv.weight": torch.randn(1, FEATURE_SIZE, 1, 1, 1),
        "out.conv.conv.bias": torch.zeros(1),
    }
    return {"model": state}, _TransformerHolder(swin)


class _TransformerHolder(nn.Module):
    def __init__(self, swin: nn.Module) -> None:
        super().__init__()
        self.swinViT = swin


@functools.cache
def _swin_transformer(seed: int) -> nn.Module:
    """A bare MONAI Swin transformer, built once per seed; read only."""
    torch.manual_seed(seed)
    swin = SwinTransformer(
        in_chans=1,
        embed_dim=FEATURE_SIZE,
        window_size=(7, 7, 7),
        patch_size=(2, 2, 2),
        depths=(2, 2, 2, 2),
        num_heads=(3, 6, 12, 24),
    )
    return perturb(swin, seed)


def _monai_ssl_swinvit() -> tuple[Any, Any]:
    swin = _swin_transformer(seed=4)
    state = prefixed("module.", swin.state_dict()) | ssl_heads("module.", 16 * FEATURE_SIZE)
    return {"state_dict": state}, _TransformerHolder(swin)


def _monai_ssl_training() -> tuple[Any, Any]:
    swin = _swin_transformer(seed=4)
    state = prefixed("module.swin_vit.", swin.state_dict()) | ssl_heads(
        "module.", 16 * FEATURE_SIZE
    )
    return {"epoch": 100, "state_dict": state}, _TransformerHolder(swin)


def shifted(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Other weights of the same shapes (a student beside its teacher)."""
    return {
        key: value + 1.0 if value.is_floating_point() else value.clone()
        for key, value in state_dict.items()
    }


def _dino_lightning() -> tuple[Any, Any]:
    teacher = shared_eva_encoder(use_v2=True)
    head = nn.Sequential(nn.Linear(24 * FEATURE_SIZE, 32), nn.Linear(32, 16))
    state = (
        prefixed("student.backbone.", shifted(teacher.state_dict()))
        | prefixed("student.head.", head.state_dict())
        | prefixed("teacher.backbone.", teacher.state_dict())
        | prefixed("teacher.head.", head.state_dict())
    )
    state["dino_loss.center"] = torch.zeros(1, 16)
    checkpoint = {
        "epoch": 7,
        "global_step": 700,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": state,
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]}],
        "hyper_parameters": {"feature_size": FEATURE_SIZE, "crops": [96, 64]},
    }
    return checkpoint, teacher


def _dino_official() -> tuple[Any, Any]:
    teacher = shared_eva_encoder(use_v2=False)
    return {
        "student": prefixed("module.backbone.", shifted(teacher.state_dict())),
        "teacher": prefixed("backbone.", teacher.state_dict()),
        "epoch": 100,
    }, teacher


def _data_parallel() -> tuple[Any, Any]:
    source = shared_eva_encoder(use_v2=False)
    return {"model": prefixed("module.", source.state_dict())}, source


def _fine_tuned_swinunetr() -> tuple[Any, Any]:
    source = monai_swinunetr(use_v2=True)
    return {"state_dict": source.state_dict(), "epoch": 5, "best_acc": 0.8}, source


def _eva_segmentation_module() -> tuple[Any, Any]:
    source = shared_eva_encoder(use_v2=True)
    state = prefixed("encoder.model.", source.state_dict())
    state["decoder._projection.0.weight"] = torch.randn(4, 4)
    return {"state_dict": state}, source


def _safetensors_flat() -> tuple[Any, Any]:
    source = shared_eva_encoder(use_v2=False)
    return source.state_dict(), source


def _coralbay_folder() -> tuple[Any, Any]:
    source = shared_eva_encoder(use_v2=True)
    return source.state_dict(), source


LAYOUTS = [
    Layout("coralbay_hf_folder", _coralbay_folder, use_v2=True, suffix=""),
    Layout("voco_b_style_f12", _voco(12), use_v2=True),
    Layout("voco_l_style_f24", _voco(24), feature_size=24, use_v2=True),
    Layout("voco_training_backbone", _voco_training, use_v2=True, suffix=".pth"),
    Layout("suprem_swinunetr", _suprem, use_v2=False, suffix=".pth"),
    Layout("universal_model_swinunetr", _universal, use_v2=False, suffix=".pth"),
    Layout("monai_ssl_model_swinvit", _monai_ssl_swinvit, use_v2=False, transformer_only=True),
    Layout("monai_ssl_training", _monai_ssl_training, use_v2=False, transformer_only=True),
    Layout(
        "monai_ssl_disruptive_autoencoder",
        _monai_ssl_disruptive_autoencoder,
        use_v2=False,
        suffix=".pth",
        transformer_only=True,
    ),
    Layout("dino_lightning_ckpt", _dino_lightning, use_v2=True, suffix=".ckpt"),
    Layout("dino_official", _dino_official, use_v2=False, suffix=".pth"),
    Layout("data_parallel_module", _data_parallel, use_v2=False),
    Layout("fine_tuned_swinunetr_v2", _fine_tuned_swinunetr, use_v2=True),
    Layout("eva_segmentation_module", _eva_segmentation_module, use_v2=True, suffix=".ckpt"),
    Layout("flat_safetensors", _safetensors_flat, use_v2=False, suffix=".safetensors"),
]


def layout(name: str) -> Layout:
    return next(candidate for candidate in LAYOUTS if candidate.name == name)


def writable_copy(feature_size: int = FEATURE_SIZE, use_v2: bool = True) -> Any:
    """A copy of the shared encoder that a test may load into (copying beats building)."""
    return copy.deepcopy(shared_eva_encoder(feature_size, use_v2))
