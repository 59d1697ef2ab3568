"""Writes eva output folders for tests, the way eva 0.4.5 writes them.

`results.json` follows `eva.core.trainers._recorder.SessionRecorder`: per stage a list with one
dict per dataset, `{"<stage>/<metric>": {"mean", "stdev", "values"}}`, mean and stdev from
`statistics`, dumped with `json.dump(indent=2, sort_keys=True)` and no final newline. A NaN
would be a bare `NaN`; null is what the plugin's recorder writes for a NaN metric.
`config.yaml` is the config template resolved by OmegaConf, as the recorder's `_save_config`
does. `test_eva_output_matches_real_eva` checks both against a real eva run.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf

SESSION = "20261127-101500123456_1a2b3c4d"

Values = Sequence[float | None]


def _statistics(values: Values) -> dict[str, Any]:
    if any(value is None for value in values):
        # The plugin's recorder writes a NaN metric as null; its statistics are null too.
        return {"mean": None, "stdev": None, "values": list(values)}
    numbers = [float(value) for value in values if value is not None]
    if any(math.isnan(value) for value in numbers):
        # eva's own recorder crashes on NaN (statistics.mean); other writers leave bare NaN.
        return {"mean": math.nan, "stdev": math.nan, "values": list(values)}
    mean = statistics.mean(numbers)
    stdev = statistics.stdev(numbers) if len(numbers) > 1 else 0
    return {"mean": mean, "stdev": stdev, "values": list(values)}


def results_json(metrics: Mapping[str, Sequence[Mapping[str, Values]]]) -> str:
    """The text of a results.json for per-run values: {"val": [{"val/DiceScore": [..]}]}."""
    data = {
        "metrics": {
            stage: [
                {name: _statistics(values) for name, values in dataset.items()}
                for dataset in metrics.get(stage, [])
            ]
            for stage in ("val", "test")
        }
    }
    return json.dumps(data, indent=2, sort_keys=True)


def resolved_config(template: str, env: Mapping[str, str] | None = None) -> str:
    """Resolves `${oc.env:...}` in a config template, as eva's recorder writes config.yaml."""
    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    try:
        return OmegaConf.to_yaml(OmegaConf.create(template), resolve=True)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_session(
    output_root: pathlib.Path,
    template: str,
    metrics: Mapping[str, Sequence[Mapping[str, Values]]],
    *,
    env: Mapping[str, str] | None = None,
    session: str = SESSION,
) -> pathlib.Path:
    """Writes `<output_root>/<session>/{results.json,config.yaml}`; returns the session folder."""
    folder = output_root / session
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(results_json(metrics))
    (folder / "config.yaml").write_text(resolved_config(template, env))
    return folder


def dice_runs(mean: float, n_runs: int = 5, spread: float = 0.01) -> list[float]:
    """Per-run values around `mean`."""
    return [mean + spread * math.sin(run + 1) for run in range(n_runs)]


SEGMENTATION_TEMPLATE = """
trainer:
  class_path: eva.Trainer
  init_args:
    n_runs: &N_RUNS ${oc.env:N_RUNS, 5}
    default_root_dir: &OUTPUT_ROOT ${oc.env:OUTPUT_ROOT, logs/${oc.env:MODEL_NAME, radiology/coralbay}/btcv}
    max_steps: &MAX_STEPS ${oc.env:MAX_STEPS, 20000}
    val_check_interval: ${oc.env:VAL_CHECK_INTERVAL, 500}
    checkpoint_type: ${oc.env:CHECKPOINT_TYPE, best}
    num_sanity_val_steps: 0
    log_every_n_steps: ${oc.env:LOG_EVERY_N_STEPS, 100}
    callbacks:
      - class_path: eva.callbacks.ConfigurationLogger
      - class_path: lightning.pytorch.callbacks.TQDMProgressBar
        init_args:
          refresh_rate: ${oc.env:TQDM_REFRESH_RATE, 1}
      - class_path: lightning.pytorch.callbacks.ModelCheckpoint
        init_args:
          filename: best
          save_top_k: 1
          monitor: ${oc.env:MONITOR_METRIC, val/DiceScore}
          mode: ${oc.env:MONITOR_METRIC_MODE, max}
    logger:
      - class_path: lightning.pytorch.loggers.TensorBoardLogger
        init_args:
          save_dir: *OUTPUT_ROOT
          name: ""
model:
  class_path: eva.vision.models.modules.SemanticSegmentationModule
  init_args:
    encoder:
      class_path: eva_coralbay.models.ModelFromRegistry
      init_args:
        model_name: ${oc.env:MODEL_NAME, radiology/coralbay}
        model_kwargs:
          out_indices: ${oc.env:OUT_INDICES, 6}
    decoder:
      class_path: eva.vision.models.networks.decoders.segmentation.SwinUNETRDecoderWithProjection
      init_args:
        feature_size: ${oc.env:IN_FEATURES, 48}
        out_channels: &NUM_CLASSES 14
        project_dims: ${oc.env:CHANNEL_PROJECTION_DIMS, null}
    spatial_dims: 3
    inferer:
      class_path: monai.inferers.SlidingWindowInferer
      init_args:
        roi_size: &ROI_SIZE ${oc.env:ROI_SIZE, [96, 96, 96]}
        sw_batch_size: ${oc.env:SW_BATCH_SIZE, 8}
        overlap: ${oc.env:SW_OVERLAP, 0.75}
    criterion:
      class_path: monai.losses.DiceCELoss
      init_args:
        include_background: false
        to_onehot_y: true
        softmax: true
    lr_multiplier_encoder: 0.0
    optimizer:
      class_path: torch.optim.AdamW
      init_args:
        lr: ${oc.env:LR_VALUE, 0.001}
        weight_decay: ${oc.env:WEIGHT_DECAY, 0.01}
    metrics:
      common:
        - class_path: eva.metrics.AverageLoss
      evaluation:
        - class_path: torchmetrics.segmentation.DiceScore
          init_args:
            num_classes: *NUM_CLASSES
            include_background: ${oc.env:DICE_INCLUDE_BACKGROUND, false}
            average: ${oc.env:DICE_AVERAGE, macro}
            input_format: one-hot
        - class_path: torchmetrics.ClasswiseWrapper
          init_args:
            metric:
              class_path: eva.vision.metrics.MonaiDiceScore
              init_args:
                include_background: true
                num_classes: *NUM_CLASSES
                input_format: one-hot
                reduction: none
            prefix: DiceScore_
data:
  class_path: eva.DataModule
  init_args:
    datasets:
      train:
        class_path: ${oc.env:DATASET_CLASS, eva_coralbay.data.adapters.BTCV}
        init_args: &DATASET_ARGS
          root: ${oc.env:DATA_ROOT, ./data/btcv}
          split: train
          download: ${oc.env:DOWNLOAD_DATA, false}
      val:
        class_path: ${oc.env:DATASET_CLASS, eva_coralbay.data.adapters.BTCV}
        init_args:
          <<: *DATASET_ARGS
          split: val
    dataloaders:
      train:
        batch_size: ${oc.env:BATCH_SIZE, 2}
        num_workers: &N_DATA_WORKERS ${oc.env:N_DATA_WORKERS, 8}
        shuffle: true
      val:
        batch_size: 1
        num_workers: *N_DATA_WORKERS
"""  # noqa: E501
"""A frozen-encoder segmentation config in the shape of eva's radiology configs."""

CLASSIFICATION_TEMPLATE = """
trainer:
  class_path: eva.Trainer
  init_args:
    n_runs: ${oc.env:N_RUNS, 5}
    default_root_dir: ${oc.env:OUTPUT_ROOT, logs/${oc.env:MODEL_NAME, radiology/coralbay}/organmnist}
    max_steps: ${oc.env:MAX_STEPS, 12500}
    callbacks:
      - class_path: lightning.pytorch.callbacks.ModelCheckpoint
        init_args:
          filename: best
          monitor: &MONITOR_METRIC ${oc.env:MONITOR_METRIC, val/MulticlassAccuracy}
          mode: &MONITOR_METRIC_MODE ${oc.env:MONITOR_METRIC_MODE, max}
      - class_path: lightning.pytorch.callbacks.EarlyStopping
        init_args:
          min_delta: 0
          patience: 400
          monitor: *MONITOR_METRIC
          mode: *MONITOR_METRIC_MODE
      - class_path: eva.callbacks.ClassificationEmbeddingsWriter
        init_args:
          output_dir: &EMBEDDINGS ${oc.env:EMBEDDINGS_ROOT, ./data/embeddings}/${oc.env:MODEL_NAME, radiology/coralbay}/organmnist
          dataloader_idx_map:
            0: train
            1: val
            2: test
          backbone:
            class_path: eva_coralbay.models.ModelFromRegistry
            init_args:
              model_name: ${oc.env:MODEL_NAME, radiology/coralbay}
          overwrite: false
model:
  class_path: eva.HeadModule
  init_args:
    head:
      class_path: torch.nn.Linear
      init_args:
        in_features: ${oc.env:IN_FEATURES, 1152}
        out_features: &NUM_CLASSES 11
    criterion: torch.nn.CrossEntropyLoss
    optimizer:
      class_path: torch.optim.AdamW
      init_args:
        lr: ${oc.env:LR_VALUE, 0.0003}
    metrics:
      common:
        - class_path: eva.metrics.AverageLoss
        - class_path: eva.metrics.MulticlassClassificationMetrics
          init_args:
            num_classes: *NUM_CLASSES
            average: ${oc.env:ACCURACY_AVERAGE, macro}
data:
  class_path: eva.DataModule
  init_args:
    datasets:
      train:
        class_path: eva.datasets.EmbeddingsClassificationDataset
        init_args: &EMBEDDING_ARGS
          root: *EMBEDDINGS
          manifest_file: manifest.csv
          split: train
      val:
        class_path: eva.datasets.EmbeddingsClassificationDataset
        init_args:
          <<: *EMBEDDING_ARGS
          split: val
      test:
        class_path: eva.datasets.EmbeddingsClassificationDataset
        init_args:
          <<: *EMBEDDING_ARGS
          split: test
      predict:
        - class_path: ${oc.env:DATASET_CLASS, eva_coralbay.data.adapters.OrganMNIST3D}
          init_args: &PREDICT_ARGS
            root: ${oc.env:DATA_ROOT, ./data/medmnist}
            split: train
        - class_path: ${oc.env:DATASET_CLASS, eva_coralbay.data.adapters.OrganMNIST3D}
          init_args:
            <<: *PREDICT_ARGS
            split: val
        - class_path: ${oc.env:DATASET_CLASS, eva_coralbay.data.adapters.OrganMNIST3D}
          init_args:
            <<: *PREDICT_ARGS
            split: test
    dataloaders:
      train:
        batch_size: ${oc.env:BATCH_SIZE, 256}
        shuffle: true
      val:
        batch_size: 256
      test:
        batch_size: 256
      predict:
        batch_size: ${oc.env:PREDICT_BATCH_SIZE, 4}
        num_workers: ${oc.env:N_DATA_WORKERS, 4}
"""  # noqa: E501
"""An offline (`eva predict_fit`) probe config in the shape of eva's classification configs."""


def segmentation_metrics(values: Values, stage: str = "val") -> dict[str, list[dict[str, Values]]]:
    """The metrics a segmentation run records: the Dice, a class-wise Dice and the loss."""
    return {
        stage: [
            {
                f"{stage}/AverageLoss": [0.5] * len(values),
                f"{stage}/DiceScore": values,
                f"{stage}/DiceScore_0_background": [0.99] * len(values),
                f"{stage}/DiceScore_1_spleen": [0.9] * len(values),
            }
        ]
    }


def classification_metrics(values: Values) -> dict[str, list[dict[str, Values]]]:
    """The metrics an offline multiclass probe records on val and test."""
    return {
        stage: [
            {
                f"{stage}/AverageLoss": [0.7] * len(values),
                f"{stage}/MulticlassAccuracy": values if stage == "test" else [0.5] * len(values),
                f"{stage}/MulticlassF1Score": [0.4] * len(values),
            }
        ]
        for stage in ("val", "test")
    }
