"""Whole-scan embedding; MONAI's SlidingWindowInferer and eva's SwinUNETREncoder are the oracles.

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
from eva_coralbay._io import sha256_of
from eva_coralbay.data import embed
from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.data.readers import ScanReadError, read_scan
from eva_coralbay.data.scans import content_hash, find_scans
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
    embedding = embed.embed_volume(encoder, volume, roi_size=64, overlap=0.5)
    with torch.inference_mode():
        single_crop = encoder.forward_embeddings(volume[None])[0]
    assert embedding.shape == (24 * FEATURE_SIZE,)
    torch.testing.assert_close(embedding, single_crop, atol=1e-4, rtol=1e-4)


def test_sliding_window_matches_the_eva_inferer_interface(checkpoint: pathlib.Path) -> None:
    """Two overlapping windows, stitched and pooled, as eva's encoder interface does with an
    inferer (CoralBayEncoder's per-window numerics against eva's are the models' tests)."""
    volume = torch.rand(1, 80, 64, 64, generator=torch.Generator().manual_seed(2))
    encoder: Any = embed.load_model("radiology/coralbay", checkpoint)
    embedding = embed.embed_volume(encoder, volume, roi_size=64, overlap=0.5)
    inferer = SlidingWindowInferer(roi_size=[64, 64, 64], sw_batch_size=2, overlap=0.5)
    with torch.inference_mode():
        expected = load_encoder(checkpoint, inferer=inferer).eval().forward_embeddings(volume[None])
    torch.testing.assert_close(embedding, expected[0], atol=1e-5, rtol=1e-5)
    # Stitching is not averaging window embeddings: the overlap counts once.
    with torch.inference_mode():
        windows = torch.stack([volume[:, :64], volume[:, 16:]])
        mean_of_windows = encoder.forward_embeddings(windows).mean(dim=0)
    assert not torch.allclose(embedding, mean_of_windows, atol=1e-4, rtol=1e-4)


def test_streaming_pooling_equals_monai_stitching_on_real_ct(
    totalsegmentator_dir: pathlib.Path, checkpoint: pathlib.Path
) -> None:
    """The pooled vector accumulated window by window is MONAI's stitched maps, pooled.

    Real CT (an 80 x 70 x 50 crop of scan C, 1.5 mm): two overlapping windows along x and y,
    neither a multiple of the window's 64, and z padded up to one window (MONAI crops its
    padding back off each map at that map's own scale). Three windows per encoder call, so the
    last call is a partial batch.
    """
    source = read_scan(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz")
    standardised, _ = CORALBAY_PROFILE.apply(source)
    volume = standardised.as_tensor()[:, 20:100, 30:100, 60:110].contiguous()
    assert volume.shape == (1, 80, 70, 50)
    grid = embed.window_grid(volume.shape[1:], 64, overlap=0.5)
    assert grid.starts == ((0, 16), (0, 6), (0,)) and grid.pad[2] == (7, 7)
    encoder: Any = embed.load_model("radiology/coralbay", checkpoint)
    pad_value = CORALBAY_PROFILE.output_range[0]

    streamed = embed.embed_volume(
        encoder, volume, roi_size=64, overlap=0.5, sw_batch_size=3, pad_value=pad_value
    )
    inferer = SlidingWindowInferer(
        roi_size=[64, 64, 64], sw_batch_size=2, overlap=0.5, mode="constant", cval=pad_value
    )
    with torch.inference_mode():
        maps = inferer(inputs=volume[None], network=encoder.forward_features)
        stitched = encoder.forward_multiscale(list(cast(Any, maps)))[0]
    assert streamed.shape == (24 * FEATURE_SIZE,)
    gap = ((streamed - stitched).abs().max() / stitched.abs().max()).item()
    assert gap <= 1e-5


def test_window_grid_rejects_bad_windows() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        embed.window_grid((100, 100, 100), 48)
    with pytest.raises(ValueError, match="overlap"):
        embed.window_grid((100, 100, 100), 64, overlap=1.0)
    with pytest.raises(ValueError, match="sw_batch_size"):
        embed.embed_volume(torch.nn.Linear(1, 1), torch.zeros(1, 64, 64, 64), sw_batch_size=0)


def _small_scan(totalsegmentator_dir: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """A 30 x 30 x 16 crop of scan C (LPS, 1.5 mm): one 64^3 window after standardisation."""
    image = cast(
        nib.Nifti1Image, nib.load(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz")
    )
    crop = image.slicer[45:75, 50:80, 70:86]
    nib.save(crop, target)
    return target


def test_coralbay_embed_writes_one_row_per_scan_and_ignores_orientation(
    totalsegmentator_dir: pathlib.Path,
    tmp_path: pathlib.Path,
    checkpoint: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
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
    # Where eva's stitching crops a coarse map to nothing (the 16 x 30 x 30 scan covers under
    # half of a 32-voxel cell of dec4 along one axis after padding), its mean is NaN; streaming
    # pools the cells the scan overlaps instead. Everything else agrees.
    finite = np.isfinite(expected.numpy())
    assert np.isfinite(first).all()
    assert (~finite).sum() in (0, 16 * FEATURE_SIZE)
    np.testing.assert_allclose(first[finite], expected.numpy()[finite], atol=1e-4, rtol=1e-4)

    assert set(table["checkpoint_hash"]) == {embed.weights_hash(load_encoder(checkpoint))}
    assert list(table["content_hash"]) == [
        sha256_of(scans / "a_lps.nii.gz"),
        sha256_of(scans / "b_sra.nii.gz"),
    ]

    # A rerun resumes: both scans are in the table with these weights, so nothing is embedded.
    assert cli.main(arguments) == 0
    assert "2 scans already embedded, 0 to go" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)

    # Other weights: refused without --overwrite, the table left as it was.
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(SwinUNETREncoder(feature_size=FEATURE_SIZE).state_dict(), other)
    before = out.read_bytes()
    assert cli.main([*arguments[:2], "--checkpoint", str(other), *arguments[4:]]) == 1
    error = capsys.readouterr().err
    assert f"{out} exists and was embedded differently (checkpoint_hash:" in error
    assert "pass --overwrite" in error
    assert out.read_bytes() == before
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]
    # So is another precision: bf16 rows would sit beside float32 ones.
    assert cli.main([*arguments, "--precision", "bf16"]) == 1
    assert "precision: 'bf16' vs 'fp32'" in capsys.readouterr().err
    assert out.read_bytes() == before


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
    exact = embed.embed_volume(encoder, volume, roi_size=64)
    mixed = embed.embed_volume(encoder, volume, roi_size=64, precision="bf16")
    assert mixed.dtype == torch.float32
    gap = ((mixed - exact).norm() / exact.norm()).item()
    assert 0 < gap <= 0.03  # measured about 1%: the encoder ran in bf16, the pooling did not
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        embed.embed_volume(encoder, volume, roi_size=64, precision="int8")


def _scans_folder(totalsegmentator_dir: pathlib.Path, folder: pathlib.Path) -> list[pathlib.Path]:
    """Three one-window crops of scan C (different anatomy) and an unreadable file."""
    folder.mkdir()
    image = cast(
        nib.Nifti1Image, nib.load(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz")
    )
    scans = []
    for name, start in (("c.nii.gz", 10), ("a.nii.gz", 45), ("b.nii.gz", 80)):
        nib.save(image.slicer[start : start + 30, 50:80, 70:86], folder / name)
        scans.append(folder / name)
    (folder / "broken.nii.gz").write_bytes(b"not a scan")
    return sorted(scans)


def test_coralbay_embed_shards_merge_and_refuse_mixed_parts(
    totalsegmentator_dir: pathlib.Path,
    tmp_path: pathlib.Path,
    checkpoint: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scans = _scans_folder(totalsegmentator_dir, tmp_path / "scans")
    out = tmp_path / "embeddings.parquet"
    common = ["--checkpoint", str(checkpoint), "--roi-size", "64", "--device", "cpu"]
    # The unreadable scan is reported by name and skipped; its shard still writes its part.
    for shard in ("0/2", "1/2"):
        arguments = ["embed", str(tmp_path / "scans"), "--shard", shard, "--out", str(out)]
        assert cli.main([*arguments, *common]) == 0
    assert f"skipping unreadable scan: {tmp_path / 'scans' / 'broken.nii.gz'}" in (
        capsys.readouterr().err
    )
    parts = [tmp_path / f"embeddings.part-0000{i}-of-00002.parquet" for i in (0, 1)]
    # Sorted identities a, b, broken, c: even positions to shard 0, odd ones to shard 1.
    assert list(pd.read_parquet(parts[0])["scan"]) == [str(scans[0])]
    assert list(pd.read_parquet(parts[1])["scan"]) == [str(scans[1]), str(scans[2])]
    assert not out.exists()

    merged = tmp_path / "merged.parquet"
    assert cli.main(["embed", "--merge", *map(str, parts), "--out", str(merged)]) == 0
    table = pd.read_parquet(merged)
    assert sorted(table["scan"]) == [str(scan) for scan in scans]
    assert list(table["content_hash"]) == [sha256_of(pathlib.Path(s)) for s in table["scan"]]
    assert embed.read_provenance(merged) == embed.read_provenance(parts[0])

    # A part embedded with another model (here: its provenance rewritten) is refused by name.
    foreign = tmp_path / "foreign.parquet"
    provenance = embed.read_provenance(parts[1])
    assert provenance is not None
    embed.write_table(
        pd.read_parquet(parts[1]),
        foreign,
        table_provenance={**provenance, "model": "radiology/voco_b"},
    )
    status = cli.main(
        ["embed", "--merge", str(parts[0]), str(foreign), "--out", str(tmp_path / "mixed.parquet")]
    )
    assert status == 1
    error = capsys.readouterr().err
    assert f"cannot merge {foreign} with {parts[0]}: embedded differently" in error
    assert "model: 'radiology/coralbay' vs 'radiology/voco_b'" in error
    assert not (tmp_path / "mixed.parquet").exists()


@pytest.mark.parametrize("shard", ["2/2", "-1/2", "0/0", "1of2"])
def test_coralbay_embed_rejects_a_bad_shard(
    shard: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["embed", str(tmp_path), f"--shard={shard}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --shard" in error
    assert "out of range" in error or "expected I/N" in error


def test_coralbay_embed_keeps_what_was_embedded_when_interrupted_and_resumes(
    totalsegmentator_dir: pathlib.Path,
    tmp_path: pathlib.Path,
    checkpoint: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans = _scans_folder(totalsegmentator_dir, tmp_path / "scans")
    out = tmp_path / "embeddings.parquet"
    arguments = [
        "embed", *map(str, scans), "--checkpoint", str(checkpoint), "--out", str(out),
        "--roi-size", "64", "--device", "cpu", "--save-every", "0",
    ]  # fmt: skip
    embedded: list[str] = []
    original = embed.ScanEmbedder.embed_prepared

    def interrupted_at_the_second(self: embed.ScanEmbedder, prepared: Any) -> Any:
        if len(embedded) == 1:
            raise KeyboardInterrupt
        embedded.append(prepared.scan)
        return original(self, prepared)

    monkeypatch.setattr(embed.ScanEmbedder, "embed_prepared", interrupted_at_the_second)
    assert cli.main(arguments) == 130
    assert list(pd.read_parquet(out)["scan"]) == [str(scans[0])]

    monkeypatch.setattr(embed.ScanEmbedder, "embed_prepared", original)
    capsys.readouterr()
    assert cli.main(arguments) == 0
    assert "1 scans already embedded, 2 to go" in capsys.readouterr().out
    assert list(pd.read_parquet(out)["scan"]) == [str(scan) for scan in scans]

    # --strict: the first unreadable scan stops the run; the table keeps its rows.
    broken = tmp_path / "scans" / "broken.nii.gz"
    assert cli.main([arguments[0], str(broken), *arguments[1:], "--strict"]) == 1
    assert f"error: {broken}: cannot read as nifti" in capsys.readouterr().err
    assert len(pd.read_parquet(out)) == 3


def test_content_hash_of_a_dicom_folder_covers_its_files(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    series = totalsegmentator_dir / "example_ct_dicom"
    assert content_hash(series) == content_hash(series)
    copy = tmp_path / "series"
    copy.mkdir()
    slices = sorted(path for path in series.iterdir() if path.is_file())[:3]
    for path in slices:
        (copy / path.name).write_bytes(path.read_bytes())
    before = content_hash(copy)
    (copy / ".DS_Store").write_bytes(b"finder")  # hidden files are not the series
    assert content_hash(copy) == before
    (copy / slices[0].name).write_bytes(slices[0].read_bytes() + b"\0")
    assert content_hash(copy) != before
    file = totalsegmentator_dir / "example_ct_sm.nii.gz"
    assert content_hash(file) == sha256_of(file)
