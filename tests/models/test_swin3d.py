"""Parity of the fast 3D Swin Transformer with MONAI's SwinUNETR backbone."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import swin_unetr

from eva_coralbay.models import swin3d, window_attention, windows
from tests.models.swin_parity import randomise

MONAI_KWARGS = {
    "in_chans": 1,
    "window_size": (7, 7, 7),
    "patch_size": (2, 2, 2),
    "depths": (2, 2, 2, 2),
    "num_heads": (3, 6, 12, 24),
    "norm_layer": torch.nn.LayerNorm,
    "spatial_dims": 3,
}


def _pair(feature_size: int, use_v2: bool) -> tuple[Any, Any]:
    reference = swin_unetr.SwinTransformer(
        embed_dim=feature_size,
        use_v2=use_v2,
        **MONAI_KWARGS,  # type: ignore[arg-type]
    )
    randomise(reference)
    ours = swin3d.SwinTransformer3D(feature_size=feature_size, use_v2=use_v2)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def _max_diff(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    assert [a.shape for a in first] == [b.shape for b in second]
    return max((a - b).abs().max().item() for a, b in zip(first, second, strict=True))


def _relative_gap(first: torch.Tensor, second: torch.Tensor) -> float:
    return ((first - second).norm() / second.norm().clamp_min(1e-12)).item()


def test_state_dict_equals_monai() -> None:
    for use_v2 in (False, True):
        reference = swin_unetr.SwinTransformer(
            embed_dim=12,
            use_v2=use_v2,
            **MONAI_KWARGS,  # type: ignore[arg-type]
        )
        ours = swin3d.SwinTransformer3D(feature_size=12, use_v2=use_v2)
        expected = {k: (v.shape, v.dtype) for k, v in reference.state_dict().items()}
        actual = {k: (v.shape, v.dtype) for k, v in ours.state_dict().items()}
        assert list(actual) == list(expected)
        assert actual == expected
        index = "layers1.0.blocks.0.attn.relative_position_index"
        assert torch.equal(ours.state_dict()[index], reference.state_dict()[index])


@pytest.mark.parametrize("use_v2", [False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 64, 32, 32),  # non-cubic: padding at every stage, windows shrink at depth
        (2, 1, 32, 32, 64),  # batch of two; 32 shrinks the window from stage 2 on
        (1, 1, 30, 22, 34),  # not a multiple of 32: patch and merge padding like MONAI
    ],
)
def test_forward_matches_monai(use_v2: bool, shape: tuple[int, ...]) -> None:
    reference, ours = _pair(12, use_v2)
    image = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(image)
        actual = ours(image)
    assert _max_diff(actual, expected) <= 1e-4
    # The maps are channels-first views of channels-last memory, as MONAI's.
    assert all(a.shape == e.shape for a, e in zip(actual, expected, strict=True))


def test_unnormalised_hidden_states_match_monai() -> None:
    reference, ours = _pair(12, False)
    image = torch.randn(1, 1, 32, 32, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _max_diff(ours(image, normalize=False), reference(image, normalize=False)) <= 1e-4


def test_chunked_inference_equals_differentiable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _, ours = _pair(12, True)
    image = torch.randn(2, 1, 32, 32, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = ours(image)
    # Small chunks: several per window group (three windows each in stage 1), one at depth.
    monkeypatch.setattr(swin3d, "_CHUNK_ELEMENTS", 1 << 16)
    with torch.no_grad():
        chunked = ours(image)
    differentiable = ours(image.requires_grad_())
    assert _max_diff(chunked, whole) <= 1e-5
    assert _max_diff([d.detach() for d in differentiable], whole) <= 1e-5


@pytest.mark.parametrize("use_v2", [False, True])
def test_gradients_match_monai(use_v2: bool) -> None:
    reference, ours = _pair(12, use_v2)
    image = torch.randn(1, 1, 32, 32, 64, generator=torch.Generator().manual_seed(4))
    input_grads = []
    for model in (reference, ours):
        source = image.clone().requires_grad_()
        outputs = model(source)
        generator = torch.Generator().manual_seed(5)
        weights = [torch.randn(o.shape, generator=generator) for o in outputs]
        torch.stack([(o * w).sum() for o, w in zip(outputs, weights, strict=True)]).sum().backward()
        assert source.grad is not None
        input_grads.append(source.grad)
    assert _relative_gap(input_grads[1], input_grads[0]) <= 1e-4
    ours_parameters = dict(ours.named_parameters())
    for name, parameter in reference.named_parameters():
        assert parameter.grad is not None and ours_parameters[name].grad is not None, name
        assert _relative_gap(ours_parameters[name].grad, parameter.grad) <= 1e-4, name


def test_get_window_size_matches_monai() -> None:
    window, shift = (7, 7, 7), (3, 3, 3)
    for spatial in [(48, 48, 48), (7, 8, 6), (3, 24, 7), (1, 1, 1)]:
        assert windows.get_window_size(spatial, window, shift) == swin_unetr.get_window_size(
            spatial, window, shift
        )


@pytest.mark.parametrize(
    ("spatial", "shift"),
    [((16, 8, 24), (3, 3, 3)), ((14, 16, 7), (3, 3, 3)), ((12, 12, 12), (0, 0, 0))],
)
def test_window_layout_matches_monai_partition_and_mask(
    spatial: tuple[int, int, int], shift: tuple[int, int, int]
) -> None:
    window: Any
    window, shift = windows.get_window_size(spatial, (7, 7, 7), shift)  # type: ignore[assignment]
    layout = windows.window_layout(1, spatial, window, shift, torch.device("cpu"), torch.float32, 3)
    n = layout.tokens_per_window
    # MONAI: pad a volume of token ids with -1, roll, partition; compute_mask on padded dims.
    ids = torch.arange(spatial[0] * spatial[1] * spatial[2], dtype=torch.float32)
    ids = ids.view(1, *spatial, 1)
    pads = [(-s) % w for s, w in zip(spatial, window, strict=True)]
    ids = F.pad(ids, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]), value=-1.0)
    if any(shift):
        ids = torch.roll(ids, shifts=[-s for s in shift], dims=(1, 2, 3))
    expected_windows = swin_unetr.window_partition(ids, window).squeeze(-1).long()
    padded = [s + p for s, p in zip(spatial, pads, strict=True)]
    expected_mask = swin_unetr.compute_mask(padded, window, shift, torch.device("cpu"))

    ours = layout.gather.clone()
    ours[layout.pad_rows] = -1
    ours = ours.view(-1, n)
    assert ours.shape == expected_windows.shape
    monai_index = {tuple(row.tolist()): i for i, row in enumerate(expected_windows)}
    assert len(monai_index) == expected_windows.shape[0]
    for group, (start, end) in enumerate(layout.groups):
        for row in ours[start:end]:
            index = monai_index[tuple(row.tolist())]
            if layout.pattern_masks is None:
                assert not any(shift)
            else:
                assert torch.equal(layout.pattern_masks[group, 0], expected_mask[index])
    # Every real token sits in exactly one row, and scatter finds it there.
    assert torch.equal(layout.gather[layout.scatter], torch.arange(layout.scatter.numel()))


def test_window_layout_is_cached_per_shape() -> None:
    args = (1, (8, 8, 8), (7, 7, 7), (3, 3, 3), torch.device("cpu"), torch.float32, 4)
    assert windows.window_layout(*args) is windows.window_layout(*args)


def test_bias_follows_parameter_updates() -> None:
    reference, ours = _pair(12, False)
    image = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        before = ours(image)
        for model in (reference, ours):
            table = model.layers1[0].blocks[1].attn.relative_position_bias_table
            table.add_(torch.linspace(-2.0, 2.0, table.numel()).view_as(table))
        after = ours(image)
        expected = reference(image)
    assert _max_diff(after, expected) <= 1e-4
    assert (after[1] - before[1]).abs().max() > 1e-2


@pytest.mark.parametrize("windows_per_step", [2, 64])
def test_attention_backward_matches_autograd(
    windows_per_step: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = torch.Generator().manual_seed(7)
    count, heads, n, dim = 5, 2, 27, 8
    # 2 windows per step: steps of 2, 2 and 1 windows, as on real inputs.
    monkeypatch.setattr(
        window_attention, "backward_step_elements", lambda _: windows_per_step * heads * n * n
    )
    q, k, v = (torch.randn(count, heads, n, dim, generator=generator) for _ in range(3))
    labels = torch.arange(n) % 3 == 0
    shift_mask = torch.where(labels[:, None] != labels[None, :], windows.MASK_VALUE, 0.0)
    mask = torch.randn(1, heads, n, n, generator=generator) + shift_mask
    scale = dim**-0.5
    grad_out = torch.randn(count, heads, n, dim, generator=generator)

    leaves = [t.clone().requires_grad_() for t in (q, k, v, mask)]
    scores = leaves[0] @ leaves[1].transpose(-1, -2) * scale + leaves[3]
    reference = torch.softmax(scores, dim=-1) @ leaves[2]
    reference.backward(grad_out)

    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, attn_mask=mask, scale=scale
    )
    grads = window_attention.attention_backward(q, k, v, out, lse, grad_out, mask, scale)
    for ours, leaf in zip(grads, leaves, strict=True):
        assert leaf.grad is not None
        assert (ours - leaf.grad).abs().max().item() <= 1e-5


def test_relative_position_index_matches_monai() -> None:
    attention = swin_unetr.WindowAttention(12, 3, (7, 7, 7))
    assert torch.equal(
        windows.relative_position_index((7, 7, 7)),
        attention.relative_position_index,  # type: ignore[arg-type]
    )


def _outputs_and_gradients(
    model: torch.nn.Module, image: torch.Tensor, autocast: bool
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Hidden states and the gradients (input and parameters) of a fixed random projection."""
    model.zero_grad()
    source = image.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs = model(source)
    generator = torch.Generator().manual_seed(5)
    weights = [torch.randn(o.shape, generator=generator) for o in outputs]
    projections = [(o.float() * w).sum() for o, w in zip(outputs, weights, strict=True)]
    torch.stack(projections).sum().backward()
    assert source.grad is not None
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return [o.detach().float() for o in outputs], gradients | {"input": source.grad}


@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode])
def test_bfloat16_autocast_inference_is_as_close_to_float32_as_monai(no_grad: Any) -> None:
    reference, ours = _pair(12, True)
    image = torch.randn(1, 1, 32, 32, 64, generator=torch.Generator().manual_seed(8))
    gaps = {}
    for name, model in (("monai", reference), ("ours", ours)):
        with no_grad():
            exact = model(image)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mixed = model(image)
        gaps[name] = [_relative_gap(m.float(), e) for m, e in zip(mixed, exact, strict=True)]
    # bfloat16 keeps 8 bits: about 0.3% off at the patch embedding, 2% at the deepest map.
    assert max(gaps["ours"]) <= 0.04
    for ours_gap, monai_gap in zip(gaps["ours"], gaps["monai"], strict=True):
        assert ours_gap <= 1.25 * monai_gap + 1e-3


def test_bfloat16_autocast_gradients_are_as_close_to_float32_as_monai() -> None:
    reference, ours = _pair(12, True)
    image = torch.randn(1, 1, 32, 32, 64, generator=torch.Generator().manual_seed(4))
    gaps: dict[str, dict[str, float]] = {}
    for name, model in (("monai", reference), ("ours", ours)):
        exact_outputs, exact = _outputs_and_gradients(model, image, autocast=False)
        mixed_outputs, mixed = _outputs_and_gradients(model, image, autocast=True)
        assert max(map(_relative_gap, mixed_outputs, exact_outputs)) <= 0.04
        # The deepest conv block normalises 1x1x2 voxels: its weight gradients are ~0 in
        # float32 and pure rounding noise in bfloat16, for MONAI as for us.
        gaps[name] = {
            key: _relative_gap(mixed[key], exact[key])
            for key in exact
            if not key.startswith("layers4c.")
        }
    assert gaps["ours"]["input"] <= 1.25 * gaps["monai"]["input"] + 1e-3
    assert gaps["ours"]["input"] <= 0.1
    ours_median = float(torch.tensor(list(gaps["ours"].values())).median())
    monai_median = float(torch.tensor(list(gaps["monai"].values())).median())
    assert ours_median <= 1.25 * monai_median + 1e-3
    # The relative-position bias tables get their gradient from the float32 mask backward.
    tables = [key for key in gaps["ours"] if key.endswith("relative_position_bias_table")]
    assert len(tables) == 8
    assert (
        max(gaps["ours"][key] for key in tables)
        <= max(gaps["monai"][key] for key in tables) * 1.25 + 1e-3
    )


def test_training_after_inference_mode_on_the_same_shape() -> None:
    # The cached window maps of a shape first seen in inference mode must serve autograd too.
    _, ours = _pair(12, False)
    image = torch.randn(1, 1, 40, 32, 24, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        expected = ours(image)
    outputs = ours(image)
    torch.stack([o.sum() for o in outputs]).sum().backward()
    assert _max_diff([o.detach() for o in outputs], expected) <= 1e-5


def test_drop_path_acts_only_on_training_with_autograd() -> None:
    reference, plain = _pair(12, True)
    dropping = swin3d.SwinTransformer3D(feature_size=12, use_v2=True, drop_path_rate=0.5)
    dropping.load_state_dict(plain.state_dict())
    image = torch.randn(2, 1, 32, 32, 64, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        expected = reference(image)
        assert _max_diff(dropping.eval()(image), expected) <= 1e-4
        assert _max_diff(dropping.train()(image), expected) <= 1e-4  # the teacher's path
    torch.manual_seed(0)
    dropped = [o.detach() for o in dropping.train()(image.clone().requires_grad_())]
    assert _max_diff(dropped, expected) > 1e-2
    # Whole samples skip a branch: the patch embedding (before any block) is untouched.
    assert _max_diff(dropped[:1], expected[:1]) <= 1e-4
    with pytest.raises(ValueError, match="drop_path_rate"):
        swin3d.SwinTransformer3D(feature_size=12, drop_path_rate=1.0)
