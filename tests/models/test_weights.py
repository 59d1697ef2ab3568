"""The weights loader: every real checkpoint layout round-trips, every bad checkpoint fails."""

from __future__ import annotations

import builtins
import json
import os
import pathlib
from collections.abc import Iterator

import numpy as np
import pytest
import safetensors.torch
import torch
from loguru import logger
from torch import nn

from eva_coralbay.models import weights
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.checkpoint_layouts import CheckpointError
from tests.models import swinunetr_checkpoints as checkpoints


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logger.add(
        lambda message: lines.append(
            f"{message.record['level'].name}: {message.record['message']}"
        ),
        level="DEBUG",
    )
    yield lines
    logger.remove(handler)


def write(checkpoint: object, path: pathlib.Path) -> pathlib.Path:
    if not path.suffix:
        assert isinstance(checkpoint, dict)
        config = weights.infer_config(checkpoint)
        return weights.save_pretrained(checkpoint, path, config)
    if path.suffix == ".safetensors":
        assert isinstance(checkpoint, dict)
        safetensors.torch.save_file(checkpoint, str(path))
    else:
        torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("layout", checkpoints.LAYOUTS, ids=repr)
def test_each_layout_round_trips(
    layout: checkpoints.Layout, tmp_path: pathlib.Path, log_lines: list[str]
) -> None:
    checkpoint, source = layout.build()
    path = write(checkpoint, tmp_path / f"{layout.name}{layout.suffix}")

    encoder = weights.load_encoder(path).eval()

    assert (encoder.feature_size, encoder.use_v2) == (layout.feature_size, layout.use_v2)
    loaded = encoder.state_dict()
    for key, tensor in checkpoints.prefixed("swinViT.", source.swinViT.state_dict()).items():
        assert torch.equal(loaded[key], tensor), key
    expected = checkpoints.reference_maps(source)
    tensor = checkpoints.random_input()
    with torch.no_grad():
        maps = encoder.forward_features(tensor)
        if not layout.transformer_only:
            # The deepest block instance-normalises a 2x1x1 map: two nearly equal values, so
            # the transformer's 1e-6 rounding differences reach 1e-4 there on some CPUs. Fed
            # the loaded encoder's own transformer state, the source's block must agree.
            expected = (*expected[:5], source.encoder10(encoder.swinViT(tensor)[4]))
    assert len(maps) == 6
    # A bare transformer leaves the conv blocks at initialisation: only its own map must agree.
    compared = [4] if layout.transformer_only else range(6)
    for index in compared:
        torch.testing.assert_close(
            maps[index], expected[index], atol=1e-4, rtol=1e-4, msg=f"map {index}"
        )
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    if layout.transformer_only:
        assert any("RANDOM INITIALISATION" in line and str(path) in line for line in warnings)
    else:
        assert warnings == []


def test_known_heads_are_dropped_with_a_log_line(tmp_path: pathlib.Path, log_lines: list[str]):
    checkpoint, _ = checkpoints.layout("suprem_swinunetr").build()
    path = write(checkpoint, tmp_path / "supervised_suprem_swinunetr_2100.pth")

    state_dict, config = weights.read_checkpoint(path)

    assert config is None
    assert not any(key.startswith(("module.", "decoder", "out.")) for key in state_dict)
    dropped = next(line for line in log_lines if "keys the encoder does not use" in line)
    for head in (
        "module.backbone.decoder5",
        "module.backbone.out",
        "module.GAP",
        "module.controller",
    ):
        assert f"{head}.*" in dropped


def test_dino_checkpoint_loads_the_teacher_not_the_student(tmp_path: pathlib.Path) -> None:
    checkpoint, teacher = checkpoints.layout("dino_lightning_ckpt").build()
    path = write(checkpoint, tmp_path / "last.ckpt")
    target = checkpoints.perturb(checkpoints.writable_copy(use_v2=True), seed=99)

    weights.load_weights_into(target, path)

    for key, tensor in teacher.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key
    student_key = "student.backbone.swinViT.patch_embed.proj.weight"
    assert not torch.equal(
        target.state_dict()["swinViT.patch_embed.proj.weight"],
        checkpoint["state_dict"][student_key],
    )


def test_load_weights_into_eva_encoder_is_exact(tmp_path: pathlib.Path) -> None:
    checkpoint, source = checkpoints.layout("universal_model_swinunetr").build()
    path = write(checkpoint, tmp_path / "clip_driven_universal_swin_unetr.pth")
    target = checkpoints.perturb(checkpoints.writable_copy(use_v2=False), seed=42)

    weights.load_weights_into(target, path)

    with torch.no_grad():
        maps = target.forward_features(checkpoints.random_input())
    for actual, expected in zip(maps, checkpoints.reference_maps(source), strict=True):
        assert torch.equal(actual, expected)


@pytest.mark.parametrize(
    ("feature_size", "use_v2", "in_channels"), [(12, False, 1), (12, True, 1), (24, True, 2)]
)
def test_infer_config_reads_the_architecture_from_the_tensors(
    feature_size: int, use_v2: bool, in_channels: int
) -> None:
    module = checkpoints.shared_eva_encoder(feature_size, use_v2)
    state_dict = checkpoints.prefixed("module.backbone.", module.state_dict())
    patch_key = "module.backbone.swinViT.patch_embed.proj.weight"
    state_dict[patch_key] = torch.zeros(feature_size, in_channels, 2, 2, 2)

    config = weights.infer_config(state_dict)

    assert (config.feature_size, config.use_v2, config.in_channels) == (
        feature_size,
        use_v2,
        in_channels,
    )


def test_save_pretrained_writes_a_folder_that_loads_back(tmp_path: pathlib.Path) -> None:
    source = checkpoints.shared_eva_encoder(use_v2=True)
    config = EncoderConfig(feature_size=12, use_v2=True, extra={"profile": {"spacing": [1.5] * 3}})

    folder = weights.save_pretrained(source, tmp_path / "export", config)

    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.safetensors"]
    written = json.loads((folder / "config.json").read_text())
    assert written["feature_size"] == 12 and written["profile"] == {"spacing": [1.5] * 3}
    state_dict, read_config = weights.read_checkpoint(folder)
    assert read_config == EncoderConfig.from_json(folder / "config.json")
    assert state_dict.keys() == source.state_dict().keys()
    assert all(torch.equal(state_dict[key], value) for key, value in source.state_dict().items())


def test_save_pretrained_refuses_to_overwrite_a_different_export(tmp_path: pathlib.Path) -> None:
    config = EncoderConfig(feature_size=12, use_v2=False)
    original = checkpoints.shared_eva_encoder(use_v2=False).state_dict()
    replacement = checkpoints.shifted(original)
    folder = weights.save_pretrained(original, tmp_path, config)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    # The same export again is a no-op; a different one is refused and leaves the files alone.
    weights.save_pretrained(original, tmp_path, config)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        weights.save_pretrained(replacement, tmp_path, config)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before

    weights.save_pretrained(replacement, tmp_path, config, overwrite=True)
    state_dict, _ = weights.read_checkpoint(folder)
    assert all(torch.equal(state_dict[key], value) for key, value in replacement.items())
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_save_pretrained_exports_a_teacher_from_a_training_state_dict(tmp_path: pathlib.Path):
    checkpoint, teacher = checkpoints.layout("dino_lightning_ckpt").build()
    config = EncoderConfig(feature_size=12, use_v2=True)

    weights.save_pretrained(checkpoint["state_dict"], tmp_path / "export", config)

    state_dict, _ = weights.read_checkpoint(tmp_path / "export")
    assert all(torch.equal(state_dict[key], value) for key, value in teacher.state_dict().items())


def test_save_pretrained_rejects_weights_that_do_not_fit_the_config(tmp_path: pathlib.Path):
    source = checkpoints.shared_eva_encoder(use_v2=True)

    with pytest.raises(CheckpointError, match="shape mismatches"):
        weights.save_pretrained(source, tmp_path / "export", EncoderConfig(feature_size=24))

    assert not (tmp_path / "export").exists()


def test_config_json_that_contradicts_the_weights_is_an_error(tmp_path: pathlib.Path) -> None:
    folder = weights.save_pretrained(
        checkpoints.shared_eva_encoder(use_v2=True), tmp_path, EncoderConfig(feature_size=12)
    )
    (folder / "config.json").write_text(json.dumps({"feature_size": 24, "use_v2": True}))

    with pytest.raises(CheckpointError, match=r"declares feature_size=24.*holds feature_size=12"):
        weights.load_encoder(folder)


# Bad checkpoints.


def test_a_checkpoint_of_another_architecture_is_rejected(tmp_path: pathlib.Path) -> None:
    other = nn.Sequential(nn.Conv3d(1, 8, 3), nn.BatchNorm3d(8), nn.Conv3d(8, 2, 1))
    path = write({"state_dict": other.state_dict()}, tmp_path / "segresnet.pt")

    with pytest.raises(CheckpointError, match="no SwinUNETR encoder found") as error:
        weights.load_encoder(path)

    assert str(path) in str(error.value)


def test_a_larger_encoder_does_not_load_into_a_smaller_one(tmp_path: pathlib.Path) -> None:
    path = write(checkpoints.shared_eva_encoder(24, use_v2=True).state_dict(), tmp_path / "f24.pt")
    target = checkpoints.writable_copy(12, use_v2=True)
    before = {key: value.clone() for key, value in target.state_dict().items()}

    with pytest.raises(CheckpointError, match="shape mismatches") as error:
        weights.load_weights_into(target, path)

    assert (
        "swinViT.patch_embed.proj.weight: checkpoint (24, 1, 2, 2, 2), model (12, 1, 2, 2, 2)"
        in (str(error.value))
    )
    assert all(torch.equal(target.state_dict()[key], value) for key, value in before.items())


def test_a_v1_checkpoint_does_not_load_into_a_v2_encoder(tmp_path: pathlib.Path) -> None:
    path = write(checkpoints.shared_eva_encoder(use_v2=False).state_dict(), tmp_path / "v1.pt")

    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\)") as error:
        weights.load_weights_into(checkpoints.writable_copy(use_v2=True), path)

    assert "swinViT.layers1c.0.layer.conv1.conv.weight" in str(error.value)


def test_one_error_lists_missing_unexpected_and_mis_shaped_keys(tmp_path: pathlib.Path) -> None:
    state_dict = dict(checkpoints.shared_eva_encoder(use_v2=True).state_dict())
    del state_dict["encoder10.layer.conv2.conv.weight"]
    state_dict["swinViT.norm.weight"] = torch.ones(12)
    state_dict["encoder2.layer.conv1.conv.weight"] = torch.zeros(12, 12, 1, 1, 1)
    path = write(state_dict, tmp_path / "edited.safetensors")

    with pytest.raises(CheckpointError) as error:
        weights.load_encoder(path)

    message = str(error.value)
    assert message.startswith(str(path))
    assert "missing keys (1):\n    encoder10.layer.conv2.conv.weight" in message
    assert "unexpected keys (1):\n    swinViT.norm.weight" in message
    assert "shape mismatches (1):\n    encoder2.layer.conv1.conv.weight" in message


def test_an_unknown_module_beside_the_encoder_is_unexpected(tmp_path: pathlib.Path) -> None:
    state_dict = checkpoints.prefixed("module.", checkpoints.shared_eva_encoder().state_dict())
    state_dict["module.mystery_block.weight"] = torch.ones(3)
    path = write(state_dict, tmp_path / "extra.pt")

    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\):\n    module.mystery_block"):
        weights.load_encoder(path)


def test_requesting_another_architecture_than_the_checkpoint_holds_fails(tmp_path: pathlib.Path):
    path = write(dict(checkpoints.shared_eva_encoder(use_v2=True).state_dict()), tmp_path / "v2.pt")

    with pytest.raises(CheckpointError, match="use_v2=True, but use_v2=False was requested"):
        weights.load_encoder(path, use_v2=False)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_truncated_file_fails_with_its_name(suffix: str, tmp_path: pathlib.Path) -> None:
    path = write(checkpoints.shared_eva_encoder().state_dict(), tmp_path / f"model{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        weights.load_encoder(path)

    assert str(path) in str(error.value)


def test_an_empty_file_fails_with_its_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.pt"
    path.touch()

    with pytest.raises(CheckpointError, match=f"{path}: the file is empty"):
        weights.read_checkpoint(path)


def test_a_sha256_mismatch_is_an_error(tmp_path: pathlib.Path) -> None:
    path = write(checkpoints.shared_eva_encoder().state_dict(), tmp_path / "model.safetensors")
    digest = __import__("hashlib").sha256(path.read_bytes()).hexdigest()

    weights.read_checkpoint(path, sha256=digest.upper())
    with pytest.raises(CheckpointError, match=f"sha256 mismatch: expected {'0' * 64}") as error:
        weights.read_checkpoint(path, sha256="0" * 64)

    assert str(path) in str(error.value)


class RunsCode:
    """Unpickling this object runs code that creates a marker file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(
    container: str, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "code_ran"
    state_dict = checkpoints.shared_eva_encoder().state_dict()
    path = tmp_path / "malicious.pth"
    torch.save(
        {"state_dict": state_dict, "args": RunsCode(marker)},
        path,
        _use_new_zipfile_serialization=container == "zip",
    )

    with pytest.raises(CheckpointError, match="refused to load") as error:
        weights.load_encoder(path)

    assert str(path) in str(error.value) and "exec" in str(error.value)
    assert not marker.exists()


def test_numpy_scalars_beside_the_weights_are_accepted(tmp_path: pathlib.Path) -> None:
    source = checkpoints.monai_swinunetr(use_v2=False)
    checkpoint = {"state_dict": source.state_dict(), "best_acc": np.float64(0.81), "epoch": 4}
    path = write(checkpoint, tmp_path / "model_best.pt")

    state_dict, _ = weights.read_checkpoint(path)

    assert torch.equal(
        state_dict["encoder1.layer.conv1.conv.weight"],
        source.state_dict()["encoder1.layer.conv1.conv.weight"],
    )


def test_a_missing_source_names_what_was_tried(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere.pt"

    with pytest.raises(CheckpointError, match="no such file or folder"):
        weights.read_checkpoint(missing)
    with pytest.raises(CheckpointError, match=r"must hold model\.safetensors"):
        weights.read_checkpoint(tmp_path)
    assert not os.listdir(tmp_path)
