import pathlib

import pytest

from eva_coralbay.pretraining.config import PretrainConfig, load_config

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "pretrain"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_config_loads(path: pathlib.Path) -> None:
    config = load_config(path)
    assert config.trainer.max_steps > 0
    assert config.model.feature_size % 12 == 0


def test_paper_scale_config_uses_f48_and_96_cubed_global_crops_at_1_5_mm() -> None:
    config = load_config(CONFIGS / "coralbay_f48.yaml")
    assert config.model.feature_size == 48
    assert config.crops.global_size == [96, 96, 96]
    assert config.data.profile == "radiology/coralbay"


def test_overrides_are_typed_and_applied() -> None:
    config = load_config(
        CONFIGS / "smoke.yaml",
        ["optim.lr=0.002", "crops.num_local=0", "data.paths=[a.nii.gz,b.nii.gz]"],
    )
    assert config.optim.lr == pytest.approx(0.002)
    assert config.crops.num_local == 0
    assert config.data.paths == ["a.nii.gz", "b.nii.gz"]


def test_unknown_keys_and_wrong_types_are_named() -> None:
    with pytest.raises(ValueError, match=r"optim.learning_rate"):
        load_config(CONFIGS / "smoke.yaml", ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match=r"trainer.max_steps"):
        load_config(CONFIGS / "smoke.yaml", ["trainer.max_steps=many"])
    with pytest.raises(ValueError, match=r"section.key=value"):
        load_config(CONFIGS / "smoke.yaml", ["optim.lr"])


def test_missing_config_file_is_named(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")


@pytest.mark.parametrize("size", [48, 32, [64, 64, 40], [64, 64]])
def test_crop_sizes_the_encoder_cannot_train_on_are_rejected(size: object) -> None:
    with pytest.raises(ValueError, match=r"crops.global_size"):
        PretrainConfig.from_dict({"crops": {"global_size": size}})


def test_non_cubic_crops_are_accepted_when_rot90_keeps_their_shape() -> None:
    config = PretrainConfig.from_dict({"crops": {"local_size": [32, 32, 64]}})
    assert config.crops.local_size == [32, 32, 64]
    with pytest.raises(ValueError, match=r"rot90"):
        PretrainConfig.from_dict({"crops": {"local_size": [64, 32, 64]}})


def test_invalid_loss_and_batch_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"centering"):
        PretrainConfig.from_dict({"loss": {"centering": "mean"}})
    with pytest.raises(ValueError, match=r"samples_per_epoch"):
        PretrainConfig.from_dict({"data": {"batch_size": 8, "samples_per_epoch": 4}})


def test_config_round_trips_through_yaml(tmp_path: pathlib.Path) -> None:
    config = load_config(CONFIGS / "smoke.yaml", ["crops.local_size=[32,32,64]"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
