import pytest
import yaml

from eva_coralbay.leaderboard import protocol
from tests.leaderboard import eva_output


def _hash(template: str, **env: str) -> str:
    return protocol.protocol_hash(yaml.safe_load(eva_output.resolved_config(template, env)))


BASE = _hash(eva_output.SEGMENTATION_TEMPLATE)


@pytest.mark.parametrize(
    "env",
    [
        {"MODEL_NAME": "radiology/voco_h"},  # the model under test
        {"IN_FEATURES": "192", "CHANNEL_PROJECTION_DIMS": "[48, 48, 96, 192, 384, 768]"},
        {"OUT_INDICES": "5"},
        {"OUTPUT_ROOT": "/scratch/runs/btcv", "DATA_ROOT": "/data/btcv"},  # paths
        {"DOWNLOAD_DATA": "true"},
        {"N_RUNS": "2"},  # the runs are the values, not the protocol
        {"N_DATA_WORKERS": "0", "SW_BATCH_SIZE": "1", "TQDM_REFRESH_RATE": "10"},  # speed
        {"LOG_EVERY_N_STEPS": "1"},
        {"MAX_STEPS": "20000", "LR_VALUE": "0.001"},  # the defaults, typed from the environment
    ],
)
def test_hash_ignores_what_is_not_protocol(env: dict[str, str]) -> None:
    assert _hash(eva_output.SEGMENTATION_TEMPLATE, **env) == BASE


@pytest.mark.parametrize(
    "env",
    [
        {"MAX_STEPS": "100"},
        {"LR_VALUE": "0.0001"},
        {"ROI_SIZE": "[64, 64, 64]"},
        {"SW_OVERLAP": "0.5"},
        {"MONITOR_METRIC": "val/AverageLoss", "MONITOR_METRIC_MODE": "min"},
        {"CHECKPOINT_TYPE": "last"},
        {"BATCH_SIZE": "4"},
        {"DATASET_CLASS": "eva.vision.datasets.BTCV"},
    ],
)
def test_hash_changes_with_the_protocol(env: dict[str, str]) -> None:
    assert _hash(eva_output.SEGMENTATION_TEMPLATE, **env) != BASE


def test_environment_strings_hash_like_typed_values() -> None:
    typed = eva_output.SEGMENTATION_TEMPLATE.replace("${oc.env:MAX_STEPS, 20000}", "20000")
    typed = typed.replace("${oc.env:ROI_SIZE, [96, 96, 96]}", "[96, 96, 96]")
    assert typed != eva_output.SEGMENTATION_TEMPLATE
    assert _hash(typed) == BASE


def test_view_drops_model_and_callbacks_but_keeps_checkpoint_choice() -> None:
    config = yaml.safe_load(eva_output.resolved_config(eva_output.CLASSIFICATION_TEMPLATE))
    view = protocol.protocol_view(config)
    text = repr(view)
    for absent in ("ModelFromRegistry", "radiology/coralbay", "EmbeddingsWriter", "medmnist"):
        assert absent not in text
    assert view["trainer"]["init_args"]["callbacks"] == [
        {"class": "ModelCheckpoint", "monitor": "val/MulticlassAccuracy", "mode": "max"},
        {
            "class": "EarlyStopping",
            "monitor": "val/MulticlassAccuracy",
            "mode": "max",
            "patience": 400,
            "min_delta": 0,
        },
    ]
    assert "predict" not in view["data"]["init_args"]["dataloaders"]
    assert view["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.0003


def test_float32_precision_hashes_like_an_unnamed_one_and_mixed_precision_does_not() -> None:
    named = eva_output.SEGMENTATION_TEMPLATE.replace(
        "    max_steps: &MAX_STEPS ${oc.env:MAX_STEPS, 20000}\n",
        "    max_steps: &MAX_STEPS ${oc.env:MAX_STEPS, 20000}\n"
        "    precision: ${oc.env:PRECISION, 32}\n",
    )
    assert named != eva_output.SEGMENTATION_TEMPLATE
    assert _hash(named) == BASE
    assert _hash(named, PRECISION="32-true") == BASE
    assert _hash(named, PRECISION="bf16-mixed") != BASE


def test_every_training_case_hashes_like_no_setting_and_a_subset_does_not() -> None:
    with_setting = eva_output.SEGMENTATION_TEMPLATE.replace(
        "          split: train\n",
        "          split: train\n          train_cases: ${oc.env:TRAIN_CASES, all}\n",
        1,
    )
    assert with_setting != eva_output.SEGMENTATION_TEMPLATE
    assert _hash(with_setting) == BASE
    assert _hash(with_setting, TRAIN_CASES="ALL") == BASE
    five = _hash(with_setting, TRAIN_CASES="5")
    assert five != BASE and five != _hash(with_setting, TRAIN_CASES="1")


def test_a_probe_on_every_sample_hashes_like_evas_dataset_and_a_per_class_cap_does_not() -> None:
    probe_base = _hash(eva_output.CLASSIFICATION_TEMPLATE)
    capped = eva_output.CLASSIFICATION_TEMPLATE.replace(
        "class_path: eva.datasets.EmbeddingsClassificationDataset",
        "class_path: eva_coralbay.evaluation.EmbeddingsClassificationSubset",
    ).replace(
        "          split: train\n      val:",
        "          split: train\n"
        "          train_samples_per_class: ${oc.env:TRAIN_SAMPLES_PER_CLASS, all}\n      val:",
        1,
    )
    assert capped.count("EmbeddingsClassificationSubset") == 3
    assert "train_samples_per_class" in capped
    assert _hash(capped) == probe_base
    five = _hash(capped, TRAIN_SAMPLES_PER_CLASS="5")
    assert five != probe_base and five != _hash(capped, TRAIN_SAMPLES_PER_CLASS="1")
