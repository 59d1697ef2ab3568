"""The shipped eva configs: generated consistently, parsed by eva, built, and run end to end.

Every config parses through eva's CLI (`--print_config`) and is checked against the protocol.
Running all of them end to end would take many minutes on two cores, so one config per family
runs fully in a subprocess (`eva fit` / `eva predict_fit`): a benchmark adapter
(TotalSegmentator v2, on the real scans), the generic DecathlonFormat (on fixture phantoms),
MedMNIST multiclass and binary, and organ patches. Every other segmentation config is built
in-process and loads a batch of its benchmark's fixture layout: the configs come from one
template, so they differ only in the dataset class and its classes.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torchmetrics.functional.classification import binary_accuracy, multiclass_accuracy

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters.medmnist3d import MedMNIST3D
from eva_coralbay.data.cache import preprocess
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.synthetic import cc_ccii, layouts
from eva_coralbay.data.synthetic import scan_table as scan_table_fixture
from eva_coralbay.data.synthetic.medmnist import write_npz
from eva_coralbay.leaderboard import eva_run, protocol, submit, task_file, tasks
from eva_coralbay.tasks import get_benchmark
from tests.conftest import REPOSITORY_ROOT
from tests.data.adapter_fixtures import NativeRoots, load_nifti, native_roots
from tests.evaluation import eva_runs
from tests.leaderboard.builders import declare_phantom_tasks
from tools import configs

__all__ = ["native_roots"]  # a fixture: imported to be used

SEGMENTATION_CONFIGS = sorted((REPOSITORY_ROOT / configs.SEGMENTATION_DIR).glob("*.yaml"))
CLASSIFICATION_CONFIGS = sorted((REPOSITORY_ROOT / configs.CLASSIFICATION_DIR).glob("*.yaml"))
REAL_SCAN_PROFILE = PreprocessingProfile(spacing=(6.0, 6.0, 6.0))
"""CoralBay's profile on a 6 mm grid: each real scan fits one 64^3 window, for speed."""

RUN_END_TO_END = (adapters.TotalSegmentatorV2,)
"""Segmentation adapters whose configs run fully below (besides decathlon_format)."""


def _config(directory: pathlib.Path, name: str) -> pathlib.Path:
    return REPOSITORY_ROOT / directory / f"{name}.yaml"


def _set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name in eva_runs.CONFIG_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# ---------------------------------------------------------------------------------------------
# The files.


def test_committed_configs_are_the_generated_ones() -> None:
    expected = configs.expected_configs()
    for relative, text in expected.items():
        path = REPOSITORY_ROOT / relative
        assert path.is_file() and path.read_text() == text, (
            f"{relative} differs from its template: run `python -m tools.configs`"
        )
    shipped = {
        path.relative_to(REPOSITORY_ROOT)
        for path in (REPOSITORY_ROOT / "configs" / "radiology").rglob("*.yaml")
    }
    assert shipped == set(expected)


def test_every_benchmark_has_a_config() -> None:
    names = {path.stem for path in SEGMENTATION_CONFIGS}
    assert {adapter.task_id for adapter in adapters.SEGMENTATION_ADAPTERS} | {
        "decathlon_format"
    } == names
    assert {path.stem for path in CLASSIFICATION_CONFIGS} == {
        adapters.OrganMNIST3D.task_id,
        adapters.NoduleMNIST3D.task_id,
        adapters.LUNA25.task_id,
        "cc_ccii",
        "scan_table",
        "scan_table_binary",
        "organ_patches",
        "decathlon_format_organs",
    }


def test_docs_list_every_config() -> None:
    tasks_doc = (REPOSITORY_ROOT / "docs" / "tasks.md").read_text()
    evaluation_doc = (REPOSITORY_ROOT / "docs" / "evaluation.md").read_text()
    for path in [*SEGMENTATION_CONFIGS, *CLASSIFICATION_CONFIGS]:
        assert f"{path.name}" in tasks_doc, path.name
        assert f"{path.stem}" in evaluation_doc, path.stem
    for name in eva_runs.CONFIG_ENV_VARS:
        assert f"`{name}`" in evaluation_doc, name


def test_generator_check_mode_reports_a_stale_file(tmp_path: pathlib.Path) -> None:
    assert configs.main(["--root", str(tmp_path)]) == 0
    stale = tmp_path / configs.SEGMENTATION_DIR / "btcv.yaml"
    stale.write_text(stale.read_text().replace("0.75", "0.5"))
    assert configs.main(["--root", str(tmp_path), "--check"]) == 1
    assert configs.main(["--root", str(tmp_path)]) == 0
    assert configs.main(["--root", str(tmp_path), "--check"]) == 0


# ---------------------------------------------------------------------------------------------
# eva parses every config (`--print_config`, in-process through eva's own CLI class; the
# end-to-end runs below start the `eva` executable), with the defaults users get.


def _printed(subcommand: str, config: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The config as `eva <subcommand> --config <config> --print_config` resolves it by default."""
    _set_env(monkeypatch, {})
    return eva_runs.print_config(subcommand, config)


def _init(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("init_args") or {}


def _callback(config: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in _init(config["trainer"])["callbacks"] if c["class_path"].endswith(name)]
    assert len(found) == 1, name
    return _init(found[0])


def _class_paths(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["class_path"])] if "class_path" in node else []
        return own + [path for value in node.values() for path in _class_paths(value)]
    if isinstance(node, list):
        return [path for item in node for path in _class_paths(item)]
    return []


@pytest.mark.parametrize(
    "adapter", adapters.SEGMENTATION_ADAPTERS, ids=lambda adapter: adapter.task_id
)
def test_segmentation_configs_follow_the_protocol(
    adapter: type[adapters.SegmentationAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _printed("fit", _config(configs.SEGMENTATION_DIR, adapter.task_id), monkeypatch)
    trainer, model, data = _init(config["trainer"]), _init(config["model"]), config["data"]
    classes = list(adapter.canonical_classes)

    assert trainer["n_runs"] == 5 and trainer["max_steps"] == 20000
    assert trainer["default_root_dir"] == f"logs/radiology/coralbay/{adapter.task_id}"
    assert trainer["checkpoint_type"] == "best"
    checkpoint = _callback(config, "ModelCheckpoint")
    assert (checkpoint["monitor"], checkpoint["mode"]) == ("val/DiceScore", "max")
    assert _callback(config, "PerCaseScores")["class_names"] == classes
    assert _callback(config, "NanSafeResults") == {}  # listed once, no arguments

    encoder = model["encoder"]
    assert encoder["class_path"] == "eva_coralbay.models.ModelFromRegistry"
    assert _init(encoder)["model_name"] == "radiology/coralbay"
    assert _init(encoder)["model_kwargs"] == {"out_indices": 6}
    assert model["lr_multiplier_encoder"] == 0.0
    decoder = model["decoder"]
    assert decoder["class_path"].endswith("SwinUNETRDecoderWithProjection")
    assert _init(decoder)["out_channels"] == len(classes)
    assert _init(decoder)["feature_size"] == 48 and _init(decoder)["project_dims"] is None
    criterion = _init(model["criterion"])
    assert model["criterion"]["class_path"] == "monai.losses.DiceCELoss"
    assert criterion["include_background"] is False and criterion["softmax"] is True
    optimizer = model["optimizer"]
    assert optimizer["class_path"] == "torch.optim.AdamW"
    assert (_init(optimizer)["lr"], _init(optimizer)["weight_decay"]) == (0.001, 0.01)
    scheduler = _init(model["lr_scheduler"])["scheduler"]
    assert scheduler["class_path"] == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert (_init(scheduler)["T_max"], _init(scheduler)["eta_min"]) == (20000, 0.0001)
    inferer = _init(model["inferer"])
    assert (inferer["roi_size"], inferer["overlap"]) == ([96, 96, 96], 0.75)

    dice, per_class = model["metrics"]["evaluation"]
    assert dice["class_path"] == "torchmetrics.segmentation.DiceScore"
    assert _init(dice)["average"] == "macro" and _init(dice)["include_background"] is False
    assert _init(dice)["num_classes"] == len(classes)
    assert _init(per_class)["labels"] == [f"{i}_{name}" for i, name in enumerate(classes)]
    # What the leaderboard will read from this config's runs.
    task = tasks.builtin_registry().get(adapter.task_id)
    assert task.eva_metric == "DiceScore" and adapter.__name__ in task.coralbay_datasets
    assert eva_run.metric_config_problems(config, task) == []

    for split in ("train", "val"):
        dataset = data["init_args"]["datasets"][split]
        assert dataset["class_path"] == f"eva_coralbay.data.adapters.{adapter.__name__}"
        assert _init(dataset)["split"] == split
        assert _init(dataset)["profile"] == "radiology/coralbay"
        assert _init(dataset)["root"] == f"./data/{adapter.task_id}"
    # The preprocessing is the model's profile, never numbers of eva's own transforms.
    paths = _class_paths(data)
    assert not [
        path for path in paths if path.rpartition(".")[2] in {"Spacing", "ScaleIntensityRange"}
    ]
    assert "eva_coralbay.evaluation.RandRotate90Axial" in paths


@pytest.mark.parametrize(
    ("name", "task_id", "num_classes"),
    [
        ("organmnist", "organmnist", 11),
        ("nodulemnist", "nodulemnist", 2),
        ("organ_patches", "totalsegmentator_v2_organs", len(configs.TOTALSEGMENTATOR_ORGANS)),
        ("cc_ccii", "cc-ccii", 3),
        ("scan_table", "scan_table", 3),
        ("scan_table_binary", "scan_table", 2),
    ],
)
def test_probe_configs_follow_the_protocol(
    name: str,
    task_id: str,
    num_classes: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> None:
    config = _printed("predict_fit", _config(configs.CLASSIFICATION_DIR, name), monkeypatch)
    trainer, model = _init(config["trainer"]), _init(config["model"])
    assert trainer["n_runs"] == 5
    assert trainer["default_root_dir"] == f"logs/radiology/coralbay/{task_id}"
    writer = _callback(config, "ClassificationEmbeddingsWriter")
    assert writer["output_dir"] == f"./data/embeddings/radiology/coralbay/{task_id}"
    backbone = writer["backbone"]
    if name in ("cc_ccii", "scan_table", "scan_table_binary"):  # whole scans, window by window
        assert backbone["class_path"] == "eva_coralbay.evaluation.WholeScanEmbedder"
        windows = _init(backbone)
        assert (windows["roi_size"], windows["overlap"]) == (96, 0.5)
        backbone = windows["encoder"]
        predict_loader = config["data"]["init_args"]["dataloaders"]["predict"]
        assert predict_loader["batch_size"] == 1  # scans differ in size
    assert backbone["class_path"] == "eva_coralbay.models.ModelFromRegistry"
    backbone = _init(backbone)
    # No out_indices: the encoder's multi-scale embedding, 24 F = 1152 dims for CoralBay.
    assert backbone["model_name"] == "radiology/coralbay" and "out_indices" not in backbone
    head = model["head"]
    assert head["class_path"] == "torch.nn.Linear" and _init(head)["in_features"] == 1152
    binary = num_classes == 2
    assert _init(head)["out_features"] == (1 if binary else num_classes)
    monitor = "val/BinaryBalancedAccuracy" if binary else "val/MulticlassAccuracy"
    if task_id == "scan_table":  # a task of a private leaderboard, with this many classes
        classes = [f"class_{index}" for index in range(num_classes)]
        _declare_scan_table_task(tmp_path, task_id, classes)
        task = tasks.Registry.for_root(tmp_path).get(task_id)
    else:
        task = tasks.builtin_registry().get(task_id)
    assert monitor == f"val/{task.eva_metric}"
    assert eva_run.metric_config_problems(config, task) == []
    assert _callback(config, "ModelCheckpoint")["monitor"] == monitor
    assert _callback(config, "EarlyStopping")["monitor"] == monitor
    assert _callback(config, "NanSafeResults") == {}
    metrics = model["metrics"]["common"][1]
    if binary:
        assert metrics["class_path"] == "eva.metrics.BinaryClassificationMetrics"
    else:
        assert metrics["class_path"] == "eva.metrics.MulticlassClassificationMetrics"
        assert _init(metrics)["num_classes"] == num_classes
        assert _init(metrics).get("average", "macro") == "macro"  # = balanced accuracy
    predict = config["data"]["init_args"]["datasets"]["predict"]
    splits = ("train", "val", "test") if "mnist" in name else ("train", "val")
    assert len(predict) == len(splits)
    assert list(writer["dataloader_idx_map"].values()) == list(splits)
    datasets = config["data"]["init_args"]["datasets"]
    assert {stage for stage, spec in datasets.items() if spec} == {*splits, "predict"}
    # Every probe trains on all samples unless TRAIN_SAMPLES_PER_CLASS caps them.
    for split in splits:
        assert datasets[split]["class_path"] == (
            "eva_coralbay.evaluation.EmbeddingsClassificationSubset"
        )
    assert _init(datasets["train"])["train_samples_per_class"] == "all"


def test_generic_configs_take_their_classes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _config(configs.SEGMENTATION_DIR, "decathlon_format")
    segmentation = _printed("fit", path, monkeypatch)
    assert _init(_init(segmentation["model"])["decoder"])["out_channels"] == 2
    assert _init(segmentation["trainer"])["default_root_dir"] == (
        "logs/radiology/coralbay/decathlon_format"
    )
    train = _init(segmentation["data"]["init_args"]["datasets"]["train"])
    assert (train["num_classes"], train["fold"]) == (2, 0)
    monkeypatch.setenv("TASK_ID", "demo_phantom_segmentation")
    monkeypatch.setenv("MODEL_NAME", "radiology/voco_b")
    monkeypatch.setenv("IN_FEATURES", "48")
    other_model = eva_runs.print_config("fit", path)
    assert _init(other_model["trainer"])["default_root_dir"] == (
        "logs/radiology/voco_b/demo_phantom_segmentation"
    )
    # eva's own backbones get the profile eva's configs give them, by name; the leaderboard
    # counts the profile as part of the model, so both runs follow one protocol.
    assert _init(other_model["data"]["init_args"]["datasets"]["val"])["profile"] == (
        "radiology/voco_b"
    )
    assert protocol.protocol_hash(other_model) == protocol.protocol_hash(segmentation)

    organs = _printed(
        "predict_fit", _config(configs.CLASSIFICATION_DIR, "decathlon_format_organs"), monkeypatch
    )
    source = _init(organs["data"]["init_args"]["datasets"]["predict"][0])["source"]
    assert source["class_path"] == "eva_coralbay.data.adapters.DecathlonFormat"
    assert _init(source)["root"] == "./data/decathlon_format"


# ---------------------------------------------------------------------------------------------
# Built in-process: each segmentation config reads a batch of its benchmark's fixture layout.


def _last_conv(module: nn.Module) -> nn.Conv3d:
    return [layer for layer in module.modules() if isinstance(layer, nn.Conv3d)][-1]


@pytest.mark.parametrize(
    "adapter",
    [adapter for adapter in adapters.SEGMENTATION_ADAPTERS if adapter not in RUN_END_TO_END],
    ids=lambda adapter: adapter.task_id,
)
def test_segmentation_config_builds_and_loads_its_data(
    adapter: type[adapters.SegmentationAdapter],
    native_roots: NativeRoots,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> None:
    env = {**eva_runs.SMALL_SEGMENTATION, "DATA_ROOT": str(native_roots(adapter))}
    _set_env(monkeypatch, {**env, "OUTPUT_ROOT": str(tmp_path), "CORALBAY_CACHE": str(tmp_path)})
    model, data = eva_runs.instantiate(_config(configs.SEGMENTATION_DIR, adapter.task_id))
    num_classes = len(adapter.canonical_classes)
    assert _last_conv(model.decoder).out_channels == num_classes
    data.prepare_data()
    data.setup("fit")

    images, masks, _ = next(iter(data.train_dataloader()))
    assert tuple(images.shape) == (1, 1, 64, 64, 64) and images.shape == masks.shape
    assert int(masks.min()) >= 0 and int(masks.max()) < num_classes
    (val_loader,) = data.val_dataloader()
    volume, mask, metadata = next(iter(val_loader))
    assert volume.shape[-3:] == mask.shape[-3:] and int(mask.max()) < num_classes
    assert float(volume.min()) >= 0.0 and float(volume.max()) <= 1.0  # CoralBay's window
    val = adapter(str(native_roots(adapter)), split="val", profile=None, allow_incomplete=True)
    val.configure()
    assert metadata["case_id"] == [val.cases[0].case_id]


# ---------------------------------------------------------------------------------------------
# End to end: eva in a subprocess, results.json and per_case_scores.parquet checked.


def _results(session: pathlib.Path) -> dict[str, Any]:
    results = json.loads((session / "results.json").read_text())
    (val,) = results["metrics"]["val"]
    return {**val, **(results["metrics"]["test"][0] if results["metrics"]["test"] else {})}


def _check_submission(session: pathlib.Path, task_id: str, key: str) -> None:
    """The leaderboard accepts the session: task and model inferred, metric and per-case file."""
    entry = submit.submit_run(session, session.parent / "leaderboard").record
    assert (entry.task_id, entry.model_id) == (task_id, "coralbay_random")
    assert entry.eva_metric_key == key
    assert list(entry.values or ()) == _results(session)[key]["values"]
    assert entry.per_case_sha256 is not None


def _check_segmentation_session(
    session: pathlib.Path, classes: list[str], val_cases: list[str], n_runs: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    metrics = _results(session)
    expected_keys = {"val/AverageLoss", "val/DiceScore"} | {
        f"val/DiceScore_{index}_{name}" for index, name in enumerate(classes)
    }
    assert set(metrics) == expected_keys
    assert all(len(metric["values"]) == n_runs for metric in metrics.values())
    table = pd.read_parquet(session / "per_case_scores.parquet")
    assert len(table) == len(val_cases) * (len(classes) - 1) * n_runs
    assert set(table["case_id"]) == set(val_cases)
    assert set(table["class"]) == set(classes[1:]) and set(table["stage"]) == {"val"}
    assert table["class_index"].between(1, len(classes) - 1).all()
    for run in range(n_runs):
        # One validation case: eva's macro Dice of a run is the mean of the case's class Dice.
        scores = np.asarray(table.loc[table["run"] == run, "score"], dtype=np.float64)
        assert math.isclose(
            float(np.nanmean(scores)), metrics["val/DiceScore"]["values"][run], abs_tol=1e-5
        )
    return metrics, table


@pytest.fixture(scope="module")
def phantom_dataset(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A user dataset of 2 + 1 phantoms in the Decathlon layout."""
    return layouts.write_decathlon_format(tmp_path_factory.mktemp("user") / "Phantoms")


@pytest.mark.slow
def test_decathlon_format_runs_end_to_end_in_bf16_mixed_precision(
    phantom_dataset: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    env = eva_runs.clean_environment(
        {
            **eva_runs.SMALL_SEGMENTATION,
            "DATA_ROOT": str(phantom_dataset),
            "NUM_CLASSES": str(len(layouts.PHANTOM_CLASSES)),
            "TASK_ID": "demo_phantom_segmentation",
            "EMBEDDINGS_ROOT": str(tmp_path / "embeddings"),
            # As on a GPU: the frozen encoder and the decoder under bf16 autocast.
            "PRECISION": "bf16-mixed",
        },
        tmp_path / "cache",
    )
    env["OUTPUT_ROOT"] = str(tmp_path / "logs" / "demo_phantom_segmentation")
    session = eva_runs.run_eva(
        "fit", _config(configs.SEGMENTATION_DIR, "decathlon_format"), env, tmp_path / "eva.log"
    )
    # Without CLASS_LABELS the per-class metrics are named by index; the per-case file names the
    # classes from the dataset.
    metrics = _results(session)
    assert {f"val/DiceScore_{index}" for index in range(7)} <= set(metrics)
    assert "Using bfloat16 Automatic Mixed Precision" in (tmp_path / "eva.log").read_text()
    table = pd.read_parquet(session / "per_case_scores.parquet")
    assert set(table["class"]) == set(layouts.PHANTOM_CLASSES[1:])
    assert set(table["case_id"]) == {"phantom_003"} and len(table) == 6
    # The phantom task is the demo's own: declared in the leaderboard's tasks.yaml.
    declare_phantom_tasks(session.parent / "leaderboard", layouts.PHANTOM_CLASSES)
    _check_submission(session, "demo_phantom_segmentation", "val/DiceScore")


def _real_totalsegmentator(root: pathlib.Path, totalsegmentator_dir: pathlib.Path) -> None:
    """Scan A (train) and its 30-slice crop (val) as a TotalSegmentator release: CT symlinks."""
    names = adapters.TotalSegmentatorV2.native_classes
    for subject, ct, seg in (
        ("s0000", "example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
        ("s0001", "example_ct_sm.nii.gz", "example_seg.nii.gz"),
    ):
        (root / subject / "segmentations").mkdir(parents=True)
        (root / subject / "ct.nii.gz").symlink_to(totalsegmentator_dir / ct)
        labels = load_nifti(totalsegmentator_dir / seg)
        values = np.asarray(labels.dataobj)
        for class_id, name in enumerate(names[1:], start=1):
            mask = (values == class_id).astype(np.uint8)
            layouts.save_nifti(
                root / subject / "segmentations" / f"{name}.nii.gz", mask, labels.affine
            )
    layouts.write_meta_csv(root, [("s0000", "train"), ("s0001", "val")])


@pytest.mark.slow
def test_totalsegmentator_runs_on_real_scans_and_records_nan_as_null(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    root = tmp_path / "totalsegmentator"
    _real_totalsegmentator(root, totalsegmentator_dir)
    # As docs/evaluation.md recommends: standardise each scan once (merging 117 mask files
    # every time a case is loaded is slow), then let the config read the cache.
    dataset = adapters.TotalSegmentatorV2(
        str(root), profile=REAL_SCAN_PROFILE, cache=str(tmp_path / "cache"), allow_incomplete=True
    )
    dataset.setup()
    report = preprocess(dataset, tmp_path / "cache")
    assert sorted(report.written) == ["s0000", "s0001"]
    env = eva_runs.clean_environment(
        {
            **eva_runs.SMALL_SEGMENTATION,
            "PROFILE": "{spacing: [6, 6, 6]}",  # = REAL_SCAN_PROFILE
            "DATA_ROOT": str(root),
            "N_RUNS": "2",
        },
        tmp_path / "cache",
    )
    env["OUTPUT_ROOT"] = str(tmp_path / "logs" / "totalsegmentator_v2")
    log = tmp_path / "eva.log"
    session = eva_runs.run_eva(
        "fit", _config(configs.SEGMENTATION_DIR, "totalsegmentator_v2"), env, log
    )
    classes = list(adapters.TotalSegmentatorV2.canonical_classes)
    metrics, table = _check_segmentation_session(session, classes, ["s0001"], n_runs=2)

    # Classes the validation scan lacks have no Dice (NaN): eva's recorder would have crashed
    # on them with two runs; the plugin records null and warns.
    present = set(
        np.unique(np.asarray(load_nifti(totalsegmentator_dir / "example_seg.nii.gz").dataobj))
    )
    absent = [name for index, name in enumerate(classes) if index and index not in present]
    assert absent
    for name in absent:
        metric = metrics[f"val/DiceScore_{classes.index(name)}_{name}"]
        assert metric == {"mean": None, "stdev": None, "values": [None, None]}
    liver = metrics[f"val/DiceScore_{classes.index('liver')}_liver"]
    assert all(isinstance(value, float) for value in liver["values"])
    assert "recorded as null in results.json" in log.read_text()
    # The per-case Dice of a class the scan has equals eva's per-class Dice of that run.
    for run in range(2):
        selected = (table["run"] == run) & (table["class"] == "liver")
        (score,) = np.asarray(table.loc[selected, "score"], dtype=np.float64)
        assert math.isclose(float(score), liver["values"][run], abs_tol=1e-5)
    # The macro Dice is finite, so the run can be submitted despite its NaN class scores.
    _check_submission(session, "totalsegmentator_v2", "val/DiceScore")


def _medmnist(root: pathlib.Path, adapter: type[MedMNIST3D], counts: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    num_classes = len(adapter.class_names())
    write_npz(
        root / f"{adapter.flag}_64.npz",
        {
            split: (
                rng.integers(0, 256, size=(count, 64, 64, 64), dtype=np.uint8),
                np.arange(count) % num_classes,
            )
            for split, count in counts.items()
        },
    )


def _check_probe_session(
    session: pathlib.Path, splits: dict[str, int], class_names: list[str], binary: bool
) -> pd.DataFrame:
    metrics = _results(session)
    key = "BinaryBalancedAccuracy" if binary else "MulticlassAccuracy"
    table = pd.read_parquet(session / "per_case_scores.parquet")
    assert set(table["metric"]) == {"correct"}
    for stage, count in splits.items():
        rows = table[table["stage"] == stage]
        assert len(rows) == count
        assert set(rows["class"]) <= set(class_names)
        # The per-case file reproduces eva's balanced accuracy exactly.
        target = torch.tensor(np.asarray(rows["class_index"], dtype=np.int64))
        prediction = torch.tensor(np.asarray(rows["predicted_index"], dtype=np.int64))
        if binary:
            recalls = [
                binary_accuracy(prediction[target == c], target[target == c]) for c in (0, 1)
            ]
            expected = float(torch.stack(recalls).mean())
        else:
            expected = float(
                multiclass_accuracy(
                    prediction, target, num_classes=len(class_names), average="macro"
                )
            )
        assert math.isclose(metrics[f"{stage}/{key}"]["values"][0], expected, abs_tol=1e-6)
    return table


@pytest.mark.slow
def test_binary_probe_runs_end_to_end(tmp_path: pathlib.Path) -> None:
    adapter = adapters.NoduleMNIST3D
    counts = {"train": 4, "val": 2, "test": 2}
    _medmnist(tmp_path / "data", adapter, counts)
    embeddings = tmp_path / "embeddings"
    env = eva_runs.clean_environment(
        {
            **eva_runs.SMALL_CLASSIFICATION,
            "DATA_ROOT": str(tmp_path / "data"),
            "OUTPUT_ROOT": str(tmp_path / "logs" / "nodulemnist"),
            "EMBEDDINGS_ROOT": str(embeddings),
        },
        tmp_path / "cache",
    )
    session = eva_runs.run_eva(
        "predict_fit",
        _config(configs.CLASSIFICATION_DIR, adapter.task_id),
        env,
        tmp_path / "eva.log",
    )
    table = _check_probe_session(session, {"val": 2, "test": 2}, adapter.class_names(), binary=True)
    # Case ids are the embedding files, named after each sample's file name.
    assert set(table["case_id"]) == {
        "val_00000.pt",
        "val_00001.pt",
        "test_00000.pt",
        "test_00001.pt",
    }
    written = embeddings / "radiology" / "coralbay_random" / adapter.task_id
    manifest = pd.read_csv(written / "manifest.csv")
    assert len(manifest) == sum(counts.values())
    (embedding,) = torch.load(written / manifest["embeddings"].iloc[0])
    assert tuple(embedding.shape) == (24 * 12,)  # the multi-scale embedding of F = 12
    _check_submission(session, "nodulemnist", "test/BinaryBalancedAccuracy")


def test_multiclass_medmnist_config_builds_and_embeds(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = adapters.OrganMNIST3D
    _medmnist(tmp_path, adapter, {"train": 2, "val": 1, "test": 1})
    env = {**eva_runs.SMALL_CLASSIFICATION, "DATA_ROOT": str(tmp_path)}
    _set_env(monkeypatch, {**env, "OUTPUT_ROOT": str(tmp_path / "out")})
    model, data = eva_runs.instantiate(_config(configs.CLASSIFICATION_DIR, adapter.task_id))
    model.configure_model()
    assert model.head.out_features == len(adapter.class_names()) == 11
    data.prepare_data()
    data.setup("predict")
    names = [dataset.filename(0) for dataset in data.datasets.predict]
    assert names == ["train_00000", "val_00000", "test_00000"]
    volume, target, _ = data.datasets.predict[0][1]
    assert tuple(volume.shape) == (1, 64, 64, 64) and int(target) == 1


def test_a_probe_config_trains_on_k_samples_per_class(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **eva_runs.SMALL_CLASSIFICATION,
        "EMBEDDINGS_ROOT": str(tmp_path),
        "OUTPUT_ROOT": str(tmp_path / "out"),
        "TRAIN_SAMPLES_PER_CLASS": "2",
    }
    _set_env(monkeypatch, env)
    embeddings = tmp_path / env["MODEL_NAME"] / "organmnist"
    embeddings.mkdir(parents=True)
    rows = [
        [f"{split}_{index:05d}", f"{split}_{index:05d}.pt", index % 11, split]
        for split, count in (("train", 44), ("val", 11))
        for index in range(count)
    ]
    pd.DataFrame(rows, columns=["origin", "embeddings", "target", "split"]).to_csv(
        embeddings / "manifest.csv", index=False
    )
    _, data = eva_runs.instantiate(_config(configs.CLASSIFICATION_DIR, "organmnist"))
    data.setup("fit")
    assert len(data.datasets.train) == 2 * 11
    assert len(data.datasets.val) == 11


def test_organ_patch_config_builds_over_totalsegmentator(
    native_roots: NativeRoots, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    env = {
        **eva_runs.SMALL_CLASSIFICATION,
        "DATA_ROOT": str(native_roots(adapters.TotalSegmentatorV2)),
    }
    _set_env(monkeypatch, {**env, "OUTPUT_ROOT": str(tmp_path), "CORALBAY_CACHE": str(tmp_path)})
    model, data = eva_runs.instantiate(_config(configs.CLASSIFICATION_DIR, "organ_patches"))
    model.configure_model()
    assert model.head.out_features == len(configs.TOTALSEGMENTATOR_ORGANS)
    train = data.datasets.predict[0]
    assert isinstance(train, adapters.OrganPatches)
    assert train.classes == list(configs.TOTALSEGMENTATOR_ORGANS)
    train.setup()
    # Every organ of the phantoms is one of the task's organs.
    organs = {train.classes[int(train[index][1])] for index in range(len(train))}
    assert organs == set(layouts.PHANTOM_CLASSES[1:])
    assert tuple(train[0][0].shape) == (1, 64, 64, 64)

    monkeypatch.setenv("NUM_CLASSES", "4")
    with pytest.raises(Exception, match="num_classes=4"):
        eva_runs.instantiate(_config(configs.CLASSIFICATION_DIR, "organ_patches"))


@pytest.mark.slow(expected_s=60)
def test_whole_scan_probe_runs_end_to_end_on_cc_ccii(tmp_path: pathlib.Path) -> None:
    root = cc_ccii.write_npy_release(tmp_path / "data")
    embeddings = tmp_path / "embeddings"
    env = eva_runs.clean_environment(
        {
            **eva_runs.SMALL_CLASSIFICATION,
            "DATA_ROOT": str(root),
            "OUTPUT_ROOT": str(tmp_path / "logs" / "cc-ccii"),
            "EMBEDDINGS_ROOT": str(embeddings),
            # 350 mm / 6 mm: each synthetic scan (59 x 59 x 50 voxels) is one 64^3 window.
            "PROFILE": "{spacing: [6, 6, 6]}",
            "ROI_SIZE": "64",
            "SW_OVERLAP": "0",
        },
        tmp_path / "cache",
    )
    session = eva_runs.run_eva(
        "predict_fit", _config(configs.CLASSIFICATION_DIR, "cc_ccii"), env, tmp_path / "eva.log"
    )
    val = [scan for scan in cc_ccii.DEFAULT_SCANS if scan.split == "val"]
    classes = list(get_benchmark("cc-ccii").classes)
    table = _check_probe_session(session, {"val": len(val)}, classes, binary=False)
    # One embedding per scan, named after its file, each the pooled multi-scale vector.
    assert set(table["case_id"]) == {
        f"CC-CCII_public/data/p{scan.patient_id}-s{scan.scan_id}.pt" for scan in val
    }
    written = embeddings / "radiology" / "coralbay_random" / "cc-ccii"
    manifest = pd.read_csv(written / "manifest.csv")
    assert len(manifest) == len(cc_ccii.DEFAULT_SCANS)
    assert dict(zip(manifest["origin"], manifest["target"], strict=True)) == {
        f"CC-CCII_public/data/p{scan.patient_id}-s{scan.scan_id}.npy": scan.target
        for scan in cc_ccii.DEFAULT_SCANS
    }
    (embedding,) = torch.load(written / manifest["embeddings"].iloc[0])
    assert tuple(embedding.shape) == (24 * 12,)
    _check_submission(session, "cc-ccii", "val/MulticlassAccuracy")


def test_the_scan_table_configs_take_the_table_and_classes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, num_classes in (("scan_table", 3), ("scan_table_binary", 2)):
        config = _printed("predict_fit", _config(configs.CLASSIFICATION_DIR, name), monkeypatch)
        train = _init(config["data"]["init_args"]["datasets"]["predict"][0])
        assert train["root"] == "./data/scans.csv" and train["classes"] is None
        assert train["num_classes"] == num_classes
    monkeypatch.setenv("DATA_ROOT", "/cohort/scans.parquet")
    monkeypatch.setenv("CLASSES", "[normal, nodule, mass, effusion]")
    monkeypatch.setenv("NUM_CLASSES", "4")
    monkeypatch.setenv("TASK_ID", "stelsewhere_chest_ct")
    config = eva_runs.print_config("predict_fit", _config(configs.CLASSIFICATION_DIR, "scan_table"))
    train, val = (_init(spec) for spec in config["data"]["init_args"]["datasets"]["predict"])
    assert (train["root"], train["split"], val["split"]) == (
        "/cohort/scans.parquet",
        "train",
        "val",
    )
    assert train["classes"] == val["classes"] == ["normal", "nodule", "mass", "effusion"]
    assert _init(_init(config["model"])["head"])["out_features"] == 4
    assert _callback(config, "PerCaseScores")["class_names"] == train["classes"]
    assert _init(config["trainer"])["default_root_dir"] == (
        "logs/radiology/coralbay/stelsewhere_chest_ct"
    )


@pytest.mark.slow(expected_s=60)
def test_whole_scan_probe_runs_end_to_end_on_a_scan_table_of_a_private_task(
    tmp_path: pathlib.Path,
) -> None:
    table = scan_table_fixture.write_scan_table(tmp_path / "data", table_name="scans.parquet")
    classes = ["cube", "ball", "rod"]  # the task's order, not the table's
    embeddings = tmp_path / "embeddings"
    env = eva_runs.clean_environment(
        {
            **eva_runs.SMALL_CLASSIFICATION,
            "DATA_ROOT": str(table),
            "CLASSES": f"[{', '.join(classes)}]",
            "NUM_CLASSES": "3",
            "TASK_ID": "shapes_ct",
            "OUTPUT_ROOT": str(tmp_path / "logs" / "shapes_ct"),
            "EMBEDDINGS_ROOT": str(embeddings),
            # The phantoms' own 4 mm grid: each scan (24^3 voxels) is one 64^3 window.
            "PROFILE": "{spacing: [4, 4, 4]}",
            "ROI_SIZE": "64",
            "SW_OVERLAP": "0",
        },
        tmp_path / "cache",
    )
    session = eva_runs.run_eva(
        "predict_fit", _config(configs.CLASSIFICATION_DIR, "scan_table"), env, tmp_path / "eva.log"
    )
    scans = scan_table_fixture.SHAPE_SCANS
    val = [scan for scan in scans if scan.split == "val"]
    per_case = _check_probe_session(session, {"val": len(val)}, classes, binary=False)
    # One embedding per scan, named after its path in the table, targets in the task's order.
    assert set(per_case["case_id"]) == {scan.path.replace(".nii.gz", ".nii.pt") for scan in val}
    written = embeddings / "radiology" / "coralbay_random" / "shapes_ct"
    manifest = pd.read_csv(written / "manifest.csv")
    assert dict(zip(manifest["origin"], manifest["target"], strict=True)) == {
        scan.path: classes.index(scan.label) for scan in scans
    }
    (embedding,) = torch.load(written / manifest["embeddings"].iloc[0])
    assert tuple(embedding.shape) == (24 * 12,)
    # A private leaderboard declares the task; its run is matched by TASK_ID's folder.
    _declare_scan_table_task(session.parent / "leaderboard", "shapes_ct", classes)
    _check_submission(session, "shapes_ct", "val/MulticlassAccuracy")


def _declare_scan_table_task(root: pathlib.Path, task_id: str, classes: list[str]) -> None:
    """Writes a leaderboard root's tasks.yaml declaring one scan-table task."""
    root.mkdir(parents=True, exist_ok=True)
    entry = {
        "id": task_id,
        "name": "Shapes CT",
        "type": "classification",
        "classes": classes,
        "image_sources": ["synthetic_shapes"],
        "citation": "Synthetic phantoms of eva_coralbay.data.synthetic.scan_table",
        "config": "radiology/offline/classification/scan_table.yaml",
        "adapter": "ScanTable",
        "synthetic": True,
    }
    (root / task_file.FILENAME).write_text(task_file.dump([entry]))
