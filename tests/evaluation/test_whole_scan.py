"""The whole-scan backbone: each scan of a batch embedded as `coralbay embed` embeds it."""

from __future__ import annotations

import pytest
import torch
from eva.vision.models import wrappers
from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder
from torch import nn

from eva_coralbay.data.embed import embed_volume
from eva_coralbay.evaluation import WholeScanEmbedder
from eva_coralbay.models import register_models


@pytest.mark.slow(expected_s=20)
def test_each_scan_is_embedded_like_coralbay_embed_whatever_its_size() -> None:
    register_models()
    wrapped = wrappers.ModelFromRegistry(
        "radiology/coralbay_random", model_kwargs={"feature_size": 12}
    )
    backbone = WholeScanEmbedder(wrapped, roi_size=64, overlap=0.5, sw_batch_size=2)
    assert backbone.encoder is wrapped.model  # the network, not the wrapper's forward

    def expected(scan: torch.Tensor) -> torch.Tensor:
        return embed_volume(backbone.encoder, scan, roi_size=64, overlap=0.5)

    generator = torch.Generator().manual_seed(0)
    odd = torch.rand(1, 1, 70, 50, 40, generator=generator)  # two windows, padded on y and z
    (vector,) = backbone(odd)
    assert tuple(vector.shape) == (24 * 12,)
    torch.testing.assert_close(vector, expected(odd[0]))
    # A batch of equal-sized scans gives one row per scan, each its own.
    batch = torch.rand(2, 1, 64, 64, 64, generator=generator)
    rows = backbone(batch)
    torch.testing.assert_close(rows[1], expected(batch[1]))
    assert not torch.allclose(rows[0], rows[1])


def test_an_eva_backbone_pools_with_forward_encoders() -> None:
    torch.manual_seed(0)
    encoder = SwinUNETREncoder(feature_size=12).eval()
    backbone = WholeScanEmbedder(encoder, roi_size=64, overlap=0.0)
    scan = torch.rand(1, 1, 64, 64, 64)
    # One window covers the scan: the pooled windows are the encoder's own embedding.
    with torch.inference_mode():
        expected = encoder(scan)
    torch.testing.assert_close(backbone(scan), expected, rtol=1e-4, atol=1e-5)


def test_encoders_without_feature_maps_and_bad_windows_are_refused() -> None:
    with pytest.raises(TypeError, match="Linear has no forward_features"):
        WholeScanEmbedder(nn.Linear(2, 2))
    encoder = SwinUNETREncoder(feature_size=12)
    with pytest.raises(ValueError, match="multiples of 32"):
        WholeScanEmbedder(encoder, roi_size=48)
    with pytest.raises(ValueError, match=r"expected scans \[B, 1, X, Y, Z\]"):
        WholeScanEmbedder(encoder, roi_size=64)(torch.zeros(1, 64, 64, 64))
