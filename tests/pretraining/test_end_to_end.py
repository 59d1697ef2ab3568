import math
import pathlib

import pandas as pd
import pytest
import torch
from eva.vision.models.networks.backbones import backbone_registry
from eva.vision.models.networks.backbones.radiology import SwinUNETREncoder

from eva_coralbay import cli
from eva_coralbay.data.profile import CORALBAY_PROFILE, profile_of_model
from eva_coralbay.models import load_encoder, register_models

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = REPOSITORY_ROOT / "configs" / "pretrain" / "smoke.yaml"
SIGNALS = [
    "train/loss",
    "train/dino_loss",
    "train/teacher_entropy",
    "train/kl",
    "train/embedding_std",
]


def _metrics(output: pathlib.Path, version: int) -> pd.DataFrame:
    return pd.read_csv(output / "csv" / f"version_{version}" / "metrics.csv")


@pytest.mark.slow
def test_smoke_config_pretrains_in_bf16_resumes_and_exports_a_loadable_encoder(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    output = tmp_path / "run"
    command = [
        "pretrain",
        "--config",
        str(SMOKE),
        "--data",
        str(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"),  # LPS NIfTI
        str(totalsegmentator_dir / "example_ct_dicom"),  # JPEG-2000 DICOM, padded crops
        "--output",
        str(output),
        "--set",
        "trainer.progress_bar=none",
        # Mixed precision, as on every GPU: the checkpoints and the export stay float32.
        "trainer.precision=bf16-mixed",
        "data.samples_per_epoch=4",
        "crops.num_local=1",
        f"data.cache_dir={tmp_path / 'cache'}",  # the resumed run reuses the standardised scans
    ]
    assert cli.main([*command, "--max-steps", "1"]) == 0
    first = _metrics(output, 0)
    assert first["step"].tolist() == [0]
    assert all(math.isfinite(value) for value in first[SIGNALS].to_numpy().ravel())

    # Starting afresh would overwrite the run: refused. Rerunning resumes from last.ckpt.
    assert cli.main([*command, "--max-steps", "2", "--fresh"]) == 2
    assert cli.main([*command, "--max-steps", "2"]) == 0
    assert _metrics(output, 1)["step"].tolist() == [1]
    last = output / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
    teacher = {
        key.removeprefix("teacher.backbone."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("teacher.backbone.")
    }

    export = tmp_path / "export"
    assert cli.main(["export", str(last), "--output", str(export)]) == 0
    assert {path.name for path in export.iterdir()} == {"model.safetensors", "config.json"}
    encoder = load_encoder(export)
    assert encoder.config.feature_size == 12
    # The export carries the profile it was pretrained with; it wins over the name's (eva's).
    assert profile_of_model(encoder, "radiology/voco_b") == CORALBAY_PROFILE
    for key, value in encoder.state_dict().items():
        assert value.dtype == teacher[key].dtype, key  # float32 (int64 for the bias index)
        torch.testing.assert_close(value, teacher[key], rtol=0, atol=0, msg=key)
    register_models()
    from_registry = backbone_registry.get("radiology/coralbay")(checkpoint=str(export))
    # eva's own SwinUNETR encoder, given the teacher's weights, is the numerical peer.
    peer = SwinUNETREncoder(feature_size=12)
    peer.load_state_dict(teacher)
    crops = torch.rand(2, 1, 64, 64, 32)
    with torch.no_grad():
        expected = peer.eval()(crops)
        torch.testing.assert_close(from_registry.eval()(crops), expected, atol=1e-4, rtol=1e-4)

    # A second export of the same checkpoint is a no-op; a different one is refused.
    assert cli.main(["export", str(last), "--output", str(export)]) == 0
    assert cli.main(["export", str(last), "--output", str(export), "--branch", "student"]) == 2


def test_pretrain_errors_name_the_bad_input(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a scan")
    common = ["pretrain", "--config", str(SMOKE), "--output", str(tmp_path / "run")]

    assert cli.main([*common, "--data", str(tmp_path / "empty")]) == 2
    assert "empty: holds no scans" in capsys.readouterr().err  # names the folder
    assert cli.main([*common, "--data", str(broken)]) == 2
    assert "broken.nii.gz" in capsys.readouterr().err
    assert cli.main([*common, "--set", "optim.learning_rate=1"]) == 2
    assert "optim.learning_rate" in capsys.readouterr().err
    assert cli.main([*common, "--set", "trainer.precision=fp16"]) == 2
    assert "trainer.precision must be one of auto, 32-true, bf16-mixed, 16-mixed; got 'fp16'" in (
        capsys.readouterr().err
    )
    assert cli.main([*common, "--set", "optim.lr_scaling=cubic"]) == 2
    assert "optim.lr_scaling must be one of linear, sqrt, none" in capsys.readouterr().err
    assert cli.main(["export", str(broken), "--output", str(tmp_path / "x")]) == 2
    assert "broken.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
