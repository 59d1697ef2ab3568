"""Whole-scan embedding; eva's own SwinUNETREncoder (same state_dict layout) is the oracle.

Windows are 64^3 (the smallest the encoder's instance norms accept) and volumes tiny: one
64^3 forward of an F=12 encoder takes seconds on a CPU.
"""

import pathlib
from typing import Any, cast

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder
from monai.inferers.inferer import SlidingWindowInferer

from eva_coralbay import cli
from eva_coralbay.data import embed
from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.data.readers import ScanReadError, read_scan
from eva_coralbay.data.scans import find_scans
from eva_coralbay.models.weights import load_encoder

FEATURE_SIZE = 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A small random SwinUNETR-family checkpoint, saved the way eva's encoders save."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "encoder.pt"
    torch.save(SwinUNETREncoder(feature_size=FEATURE_SIZE).state_dict(), path)
    return path


def _eva_encoder(checkpoint: pathlib.Path, **kwargs: object) -> Any:
    encoder = SwinUNETREncoder(feature_size=FEATURE_SIZE, **kwargs)  # type: ignore[arg-type]
    encoder.load_state_dict(torch.load(checkpoint, weights_only=True))
    return encoder.eval()


def test_one_window_equals_the_single_crop_embedding(checkpoint: pathlib.Path) -> None:
    encoder: Any = embed.load_model("radiology/coralbay", checkpoint)
    volume = torch.rand(1, 64, 64, 64, generator=torch.Generator().manual_seed(1))
    embedding = embed.embed_volume(encoder, volume, embed.build_inferer(64, overlap=0.5))
    with torch.inference_mode():
        single_crop = encoder.forward_embeddings(volume[None])[0]
    assert embedding.shape == (24 * FEATURE_SIZE,)
    torch.testing.assert_close(embedding, single_crop, atol=1e-4, rtol=1e-4)


def test_sliding_window_matches_the_eva_inferer_interface(checkpoint: pathlib.Path) -> None:
    """Two overlapping windows, stitched and pooled, as eva's encoder interface does with an
    inferer (CoralBayEncoder's per-window numerics against eva's are the models' tests)."""
    volume = torch.rand(1, 80, 64, 64, generator=torch.Generator().manual_seed(2))
    encoder: Any = embed.load_model("radiology/coralbay", checkpoint)
    embedding = embed.embed_volume(encoder, volume, embed.build_inferer(64, overlap=0.5))
    inferer = SlidingWindowInferer(roi_size=[64, 64, 64], sw_batch_size=2, overlap=0.5)
    with torch.inference_mode():
        expected = load_encoder(checkpoint, inferer=inferer).eval().forward_embeddings(volume[None])
    torch.testing.assert_close(embedding, expected[0], atol=1e-5, rtol=1e-5)
    # Stitching is not averaging window embeddings: the overlap counts once.
    with torch.inference_mode():
        windows = torch.stack([volume[:, :64], volume[:, 16:]])
        mean_of_windows = encoder.forward_embeddings(windows).mean(dim=0)
    assert not torch.allclose(embedding, mean_of_windows, atol=1e-4, rtol=1e-4)


def test_build_inferer_rejects_bad_windows() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        embed.build_inferer(48)
    with pytest.raises(ValueError, match="overlap"):
        embed.build_inferer(64, overlap=1.0)


def _small_scan(totalsegmentator_dir: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """A 30 x 30 x 16 crop of scan C (LPS, 1.5 mm): one 64^3 window after standardisation."""
    image = cast(
        nib.Nifti1Image, nib.load(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz")
    )
    crop = image.slicer[45:75, 50:80, 70:86]
    nib.save(crop, target)
    return target


def test_coralbay_embed_writes_one_row_per_scan_and_ignores_orientation(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path, checkpoint: pathlib.Path
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    original = _small_scan(totalsegmentator_dir, scans / "a_lps.nii.gz")
    image = cast(nib.Nifti1Image, nib.load(original))
    assert image.affine is not None
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(image.affine), nib.orientations.axcodes2ornt("SRA")
    )
    nib.save(image.as_reoriented(transform.tolist()), scans / "b_sra.nii.gz")
    out = tmp_path / "embeddings.parquet"
    arguments = [
        "embed", str(scans), "--checkpoint", str(checkpoint), "--out", str(out),
        "--roi-size", "64", "--device", "cpu",
    ]  # fmt: skip

    assert cli.main(arguments) == 0
    table = pd.read_parquet(out)
    assert list(table["scan"]) == [str(scans / "a_lps.nii.gz"), str(scans / "b_sra.nii.gz")]
    assert set(table["model"]) == {"radiology/coralbay"}
    assert set(table["checkpoint"]) == {str(checkpoint)}
    assert set(table["profile_fingerprint"]) == {CORALBAY_PROFILE.fingerprint()}
    assert list(table["source_shape"].iloc[0]) == [30, 30, 16]
    assert list(table["source_shape"].iloc[1]) == [16, 30, 30]
    assert list(table["shape"].iloc[0]) == list(table["shape"].iloc[1])
    assert pq.read_schema(out).field("embedding").type.value_type == "float"
    first, second = (np.asarray(vector) for vector in table["embedding"])
    assert first.shape == (24 * FEATURE_SIZE,)
    # The same standardised voxels: the same embedding, up to float rounding.
    np.testing.assert_allclose(first, second, atol=1e-5, rtol=1e-5)

    # The reference: eva's own encoder, with the same weights and inferer, on the scan
    # standardised by the profile (smaller than a window: padded, then cropped away).
    standardised, _ = CORALBAY_PROFILE.apply(read_scan(original))
    inferer = SlidingWindowInferer(roi_size=[64, 64, 64], overlap=0.5)
    with torch.inference_mode():
        expected = _eva_encoder(checkpoint, inferer=inferer).forward_embeddings(
            standardised.as_tensor()[None]
        )[0]
    np.testing.assert_allclose(first, expected.numpy(), atol=1e-4, rtol=1e-4)

    # No silent overwrite: the table is left as it was.
    before = out.read_bytes()
    assert cli.main(arguments) == 1
    assert out.read_bytes() == before
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_coralbay_embed_reports_unreadable_scans(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a scan")
    out = tmp_path / "out.parquet"
    status = cli.main(
        ["embed", str(broken), "--model", "radiology/coralbay_random", "--out", str(out)]
    )
    assert status == 1
    assert f"{broken}: cannot read as nifti" in capsys.readouterr().err
    assert not out.exists()


def test_embed_and_pretrain_find_the_same_scans(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # One finder serves both commands (eva_coralbay.data.scans); paths come back resolved.
    shared = totalsegmentator_dir.resolve()
    assert find_scans([totalsegmentator_dir / "example_ct_dicom"]) == [shared / "example_ct_dicom"]
    collected = find_scans([totalsegmentator_dir])
    assert shared / "example_ct_dicom" in collected
    assert shared / "aorta_report" / "ct_cropped.nii.gz" in collected
    assert shared / "LICENSE" not in collected
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanReadError, match="holds no scans"):
        find_scans([tmp_path / "empty"])
    with pytest.raises(ScanReadError, match="no such file"):
        find_scans([tmp_path / "absent.nii.gz"])


def test_write_table_is_atomic_and_refuses_to_overwrite(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "table.parquet"
    table = pd.DataFrame({"scan": ["a"], "embedding": [[0.5, 1.5]]})
    embed.write_table(table, out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        embed.write_table(table, out)
    embed.write_table(table.assign(scan=["b"]), out, overwrite=True)
    assert list(pd.read_parquet(out)["scan"]) == ["b"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["table.parquet"]


def test_bf16_embedding_stays_close_to_float32(checkpoint: pathlib.Path) -> None:
    encoder: Any = embed.load_model("radiology/coralbay", checkpoint)
    volume = torch.rand(1, 80, 64, 64, generator=torch.Generator().manual_seed(3))
    inferer = embed.build_inferer(64, overlap=0.5)
    exact = embed.embed_volume(encoder, volume, inferer)
    mixed = embed.embed_volume(encoder, volume, inferer, precision="bf16")
    assert mixed.dtype == torch.float32
    gap = ((mixed - exact).norm() / exact.norm()).item()
    assert 0 < gap <= 0.03  # measured about 1%: the encoder ran in bf16, the stitching did not
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        embed.embed_volume(encoder, volume, inferer, precision="int8")
