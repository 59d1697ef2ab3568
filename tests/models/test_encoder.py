"""CoralBayEncoder against eva's SwinUNETREncoder: state_dict, numerics and interface."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder
from monai.inferers.inferer import SlidingWindowInferer

from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.encoder import CoralBayEncoder, check_spatial_shape
from tests.models.swin_parity import randomise


def _pair(feature_size: int, use_v2: bool, **kwargs: Any) -> tuple[Any, CoralBayEncoder]:
    # The weights not set by `randomise` come from the global generator, so it is seeded here:
    # for some draws (global seed 8 of 0-11) one stage-2 pre-activation lies within float32
    # rounding (5e-7) of leaky ReLU's kink. The gradient jumps there, and on an 8x16x24 map one
    # voxel on the other side moves a conv weight's gradient by 1e-2 (relative) between two
    # equally accurate float32 orders of summation: no float32 tolerance holds for such a draw.
    torch.manual_seed(0)
    reference = SwinUNETREncoder(feature_size=feature_size, use_v2=use_v2, **kwargs)  # type: ignore[arg-type]
    randomise(reference)
    ours = CoralBayEncoder(feature_size=feature_size, use_v2=use_v2, **kwargs)  # type: ignore[arg-type]
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def _max_diff(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    assert [a.shape for a in first] == [b.shape for b in second]
    return max((a - b).abs().max().item() for a, b in zip(first, second, strict=True))


def _image(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_v2", [False, True])
@pytest.mark.parametrize("feature_size", [12, 24])
def test_state_dict_equals_eva(feature_size: int, use_v2: bool) -> None:
    reference = SwinUNETREncoder(feature_size=feature_size, use_v2=use_v2).state_dict()
    ours = CoralBayEncoder(feature_size=feature_size, use_v2=use_v2).state_dict()
    assert list(ours) == list(reference)
    for key, value in reference.items():
        assert (ours[key].shape, ours[key].dtype) == (value.shape, value.dtype), key
    # One checkpoint loads strictly into either.
    SwinUNETREncoder(feature_size=feature_size, use_v2=use_v2).load_state_dict(ours, strict=True)


def test_v1_and_v2_checkpoints_do_not_mix() -> None:
    with pytest.raises(RuntimeError, match="layers1c"):
        CoralBayEncoder(feature_size=12, use_v2=False).load_state_dict(
            SwinUNETREncoder(feature_size=12, use_v2=True).state_dict(), strict=True
        )


@pytest.mark.parametrize(
    ("feature_size", "use_v2", "shape"),
    [
        (12, False, (1, 1, 64, 32, 96)),  # non-cubic
        (12, True, (1, 1, 64, 32, 96)),
        (24, True, (2, 1, 32, 64, 96)),  # batch of two; 32 shrinks deep windows
    ],
)
def test_features_and_embeddings_match_eva(
    feature_size: int, use_v2: bool, shape: tuple[int, ...]
) -> None:
    reference, ours = _pair(feature_size, use_v2)
    reference.eval()
    ours.eval()
    image = _image(*shape)
    with torch.no_grad():
        expected, actual = reference.forward_features(image), ours.forward_features(image)
        assert len(actual) == 6
        assert _max_diff(actual, expected) <= 1e-4
        for method in ("forward_encoders", "forward_head"):
            expected_embedding = getattr(reference, method)(expected)
            actual_embedding = getattr(ours, method)(actual)
            assert _max_diff([actual_embedding], [expected_embedding]) <= 1e-4
    assert actual_embedding.shape == (shape[0], 16 * feature_size)
    multiscale = ours.forward_multiscale(actual)
    assert multiscale.shape == (shape[0], 24 * feature_size)
    # eva's name for it, and the one-call form pretraining uses, give the same vector.
    assert torch.equal(ours.forward_encoders(actual), multiscale)
    with torch.no_grad():
        assert _max_diff([ours.embed_multiscale(image)], [multiscale]) <= 1e-6


def test_training_forward_and_gradients_match_eva() -> None:
    # v2 covers every block type; test_swin3d checks v1's transformer gradients against MONAI.
    reference, ours = _pair(12, use_v2=True)
    image = _image(1, 1, 32, 64, 96, seed=1)
    outputs, input_grads = [], []
    for model in (reference, ours):
        model.train()
        source = image.clone().requires_grad_()
        features = model.forward_features(source)
        generator = torch.Generator().manual_seed(2)
        weights = [torch.randn(f.shape, generator=generator) for f in features]
        torch.stack(
            [(f * w).sum() for f, w in zip(features, weights, strict=True)]
        ).sum().backward()
        outputs.append([f.detach() for f in features])
        assert source.grad is not None
        input_grads.append(source.grad)
    assert _max_diff(outputs[1], outputs[0]) <= 1e-4

    def gap(ours_grad: torch.Tensor, reference_grad: torch.Tensor) -> float:
        return ((ours_grad - reference_grad).norm() / reference_grad.norm()).item()

    assert gap(input_grads[1], input_grads[0]) <= 1e-4
    ours_parameters = dict(ours.named_parameters())
    for name, parameter in reference.named_parameters():
        assert parameter.grad is not None, name
        ours_grad = ours_parameters[name].grad
        assert ours_grad is not None, name
        assert gap(ours_grad, parameter.grad) <= 1e-4, name


def test_sliding_window_inferer_in_eval_matches_eva() -> None:
    inferer = SlidingWindowInferer(roi_size=(32, 64, 64), sw_batch_size=2, overlap=0.25)
    reference, ours = _pair(12, True, inferer=inferer)
    reference.eval()
    ours.eval()
    image = _image(1, 1, 40, 64, 64, seed=3)  # not a multiple of 32: only windows reach the net
    with torch.no_grad():
        expected = reference.forward_features(image)
        actual = ours.forward_features(image)
        assert _max_diff(actual, expected) <= 1e-4
        assert _max_diff([ours(image)], [reference(image)]) <= 1e-4  # type: ignore[list-item]


def test_inferer_is_not_used_in_training() -> None:
    inferer = SlidingWindowInferer(roi_size=(32, 32, 32), sw_batch_size=1)
    ours = CoralBayEncoder(feature_size=12, inferer=inferer)
    ours.train()
    with pytest.raises(ValueError, match=r"40"):
        ours.forward_features(_image(1, 1, 40, 32, 32))


def test_spatial_size_not_multiple_of_32_names_shape_and_nearest_sizes() -> None:
    ours = CoralBayEncoder(feature_size=12)
    with pytest.raises(ValueError) as error:
        ours(_image(1, 1, 100, 64, 20))
    message = str(error.value)
    assert "(1, 1, 100, 64, 20)" in message
    assert "D=100 is not a multiple of 32 (nearest valid: 96 or 128)" in message
    assert "W=20 is not a multiple of 32 (nearest valid: 32)" in message
    assert "H=" not in message
    check_spatial_shape((2, 1, 32, 64, 96))  # valid: no error
    with pytest.raises(ValueError, match="5D"):
        check_spatial_shape((1, 32, 32, 32))


def test_a_32_cube_is_refused_up_front_as_eva_fails_on_it_deep_inside() -> None:
    ours = CoralBayEncoder(feature_size=12).eval()
    with pytest.raises(ValueError, match=r"\(4, 1, 32, 32, 32\).*single voxel.*64"):
        ours(_image(4, 1, 32, 32, 32))
    # eva's encoder fails on the same input, in eval mode too, with MONAI's misleading message.
    reference = SwinUNETREncoder(feature_size=12).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="more than 1 spatial element"):
        reference(_image(4, 1, 32, 32, 32))
    check_spatial_shape((4, 1, 32, 32, 64))  # a 1x1x2 deepest map is enough


def test_out_indices_and_embeddings_type() -> None:
    image = _image(1, 1, 32, 32, 64, seed=4)
    full = CoralBayEncoder(feature_size=12).eval()
    with torch.no_grad():
        features = full.forward_features(image)
        embedding = full(image)
        assert isinstance(embedding, torch.Tensor)
        assert embedding.shape == (1, full.embedding_dim) == (1, 24 * 12)
        assert torch.allclose(embedding, full.forward_encoders(features))

        for count in (1, 3, 6):
            sliced = CoralBayEncoder(feature_size=12, out_indices=count).eval()
            sliced.load_state_dict(full.state_dict())
            maps = sliced(image)
            assert isinstance(maps, list) and len(maps) == count
            assert _max_diff(maps, features[-count:]) == 0.0

        head = CoralBayEncoder(feature_size=12, embeddings_type="head").eval()
        head.load_state_dict(full.state_dict())
        assert head.embedding_dim == 16 * 12
        head_embedding = head(image)
        assert isinstance(head_embedding, torch.Tensor)
        assert torch.allclose(head_embedding, full.forward_head(features))
        # forward_intermediates always returns the multiscale embedding, as eva's does.
        intermediate_embedding, intermediate_features = head.forward_intermediates(image)
        assert intermediate_embedding.shape == (1, 24 * 12)
        assert len(intermediate_features) == 6

    with pytest.raises(ValueError, match="embeddings_type"):
        CoralBayEncoder(feature_size=12, embeddings_type="mean")  # type: ignore[arg-type]


def test_config_properties_and_from_config() -> None:
    profile = {"profile": {"spacing": [1.5, 1.5, 1.5]}}
    config = EncoderConfig(feature_size=24, use_v2=False, in_channels=2, extra=profile)
    encoder = CoralBayEncoder.from_config(config, out_indices=2)
    assert encoder.config == EncoderConfig(
        feature_size=24, use_v2=False, in_channels=2, extra=profile
    )
    assert encoder.config.to_dict()["profile"] == profile["profile"]
    assert (encoder.feature_size, encoder.use_v2, encoder.embedding_dim) == (24, False, 576)
    assert encoder.swinViT.patch_embed.proj.in_channels == 2
    reference = SwinUNETREncoder(in_channels=2, feature_size=24, use_v2=False)
    assert list(encoder.state_dict()) == list(reference.state_dict())
    with pytest.raises(ValueError, match="multiple of 12"):
        CoralBayEncoder(feature_size=20)
    with pytest.raises(AttributeError):
        encoder.feature_size = 48  # type: ignore[misc]
