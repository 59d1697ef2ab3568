"""Writes every eva config under configs/radiology/ from one template per task type.

The YAML files are plain, committed and run as they are (`eva fit --config ...`); this module
only keeps them consistent. After changing a template, regenerate them with

    python -m eva_coralbay.evaluation.configs          # writes configs/radiology/...
    python -m eva_coralbay.evaluation.configs --check  # exits 1 if a file differs

and tests/evaluation/test_configs.py checks that the committed files equal the generated ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import string
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from eva_coralbay import _io, tasks
from eva_coralbay.data import adapters

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SEGMENTATION_DIR = Path("configs/radiology/online/segmentation")
CLASSIFICATION_DIR = Path("configs/radiology/offline/classification")

DEFAULT_MODEL = "radiology/coralbay"
MODEL_ENV = "${oc.env:MODEL_NAME, " + DEFAULT_MODEL + "}"

TOTALSEGMENTATOR_ORGANS: tuple[str, ...] = tasks.get_benchmark("totalsegmentator_v2_organs").classes
"""The organs of the `totalsegmentator_v2_organs` task: large, solid structures that fit a
96 mm patch, with their left / right twins kept apart."""


class _Template(string.Template):
    # "$" is everywhere in eva configs (`${oc.env:...}`): placeholders are `@name` instead.
    delimiter = "@"


@dataclasses.dataclass(frozen=True)
class SegmentationTask:
    """What differs between two segmentation configs."""

    task_id: str
    title: str
    dataset_class: str
    class_names: tuple[str, ...] | None
    """Canonical class names, background first; None: read from the data at run time."""
    about: str
    dataset_args: str = ""
    """Extra `init_args` lines of the datasets (indented to the dataset level)."""
    num_classes: str | None = None
    """The NUM_CLASSES expression when `class_names` is None."""
    task_id_env: bool = False
    """Whether the output task id is `${oc.env:TASK_ID, <task_id>}`."""


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """What differs between two offline classification (probe) configs."""

    task_id: str
    title: str
    class_names: tuple[str, ...] | None
    predict_datasets: str
    """The YAML of the `predict` dataset list (indented to the list level)."""
    splits: tuple[str, ...]
    about: str
    num_classes: str | None = None
    """The NUM_CLASSES expression when `class_names` is None."""
    class_names_expression: str = "null  # the class indices"
    """The PerCaseScores `class_names` YAML when `class_names` is None."""
    task_id_env: bool = False
    file_stem: str | None = None
    """The config's file name without `.yaml` when it is not the task id."""

    @property
    def file_name(self) -> str:
        """The config's file name."""
        return f"{self.file_stem or self.task_id}.yaml"


SEGMENTATION_TEMPLATE = _Template("""\
---
@header
trainer:
  class_path: eva.Trainer
  init_args:
    n_runs: &N_RUNS ${oc.env:N_RUNS, 5}
    default_root_dir: &OUTPUT_ROOT ${oc.env:OUTPUT_ROOT, logs/@model_env/@task_dir}
    max_steps: &MAX_STEPS ${oc.env:MAX_STEPS, 20000}
    val_check_interval: ${oc.env:VAL_CHECK_INTERVAL, 500}
    max_epochs: null
    check_val_every_n_epoch: null
    checkpoint_type: ${oc.env:CHECKPOINT_TYPE, best}
    num_sanity_val_steps: 0
    log_every_n_steps: ${oc.env:LOG_EVERY_N_STEPS, 100}
    callbacks:
      - class_path: eva.callbacks.ConfigurationLogger
      - class_path: lightning.pytorch.callbacks.TQDMProgressBar
        init_args:
          refresh_rate: ${oc.env:TQDM_REFRESH_RATE, 1}
      - class_path: lightning.pytorch.callbacks.LearningRateMonitor
        init_args:
          logging_interval: step
      - class_path: lightning.pytorch.callbacks.ModelCheckpoint
        init_args:
          filename: best
          save_last: ${oc.env:SAVE_LAST, false}
          save_top_k: 1
          monitor: ${oc.env:MONITOR_METRIC, val/DiceScore}
          mode: ${oc.env:MONITOR_METRIC_MODE, max}
      # Per-case, per-class Dice of the final evaluations, written beside results.json for the
      # leaderboard's confidence intervals.
      - class_path: eva_coralbay.evaluation.PerCaseScores
        init_args:
          class_names:@per_case_names
      # results.json also when a metric is NaN (a class absent from a validation scan): eva
      # 0.4.5 crashes on it over several runs.
      - class_path: eva_coralbay.evaluation.NanSafeResults
    logger:
      - class_path: lightning.pytorch.loggers.TensorBoardLogger
        init_args:
          save_dir: *OUTPUT_ROOT
          name: ""
model:
  class_path: eva.vision.models.modules.SemanticSegmentationModule
  init_args:
    encoder:
      # The plugin's ModelFromRegistry knows radiology/coralbay* and every eva backbone.
      class_path: eva_coralbay.models.ModelFromRegistry
      init_args:
        model_name: @model_env
        model_kwargs:
          out_indices: ${oc.env:OUT_INDICES, 6}
        model_extra_kwargs: ${oc.env:MODEL_EXTRA_KWARGS, null}
    decoder:
      class_path: eva.vision.models.networks.decoders.segmentation.SwinUNETRDecoderWithProjection
      init_args:
        feature_size: ${oc.env:IN_FEATURES, 48}
        out_channels: &NUM_CLASSES @num_classes
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
        batch: true
    lr_multiplier_encoder: 0.0
    optimizer:
      class_path: torch.optim.AdamW
      init_args:
        lr: ${oc.env:LR_VALUE, 0.001}
        betas: [0.9, 0.999]
        weight_decay: ${oc.env:WEIGHT_DECAY, 0.01}
    lr_scheduler:
      interval: step
      scheduler:
        class_path: torch.optim.lr_scheduler.CosineAnnealingLR
        init_args:
          T_max: *MAX_STEPS
          eta_min: ${oc.env:LR_VALUE_END, 0.0001}
    postprocess:
      predictions_transforms:
        - class_path: eva.core.models.transforms.AsDiscrete
          init_args:
            argmax: true
            to_onehot: *NUM_CLASSES
      targets_transforms:
        - class_path: eva.core.models.transforms.AsDiscrete
          init_args:
            to_onehot: *NUM_CLASSES
    metrics:
      common:
        - class_path: eva.metrics.AverageLoss
      evaluation:
        # The leaderboard's metric: macro Dice over the foreground classes.
        - class_path: torchmetrics.segmentation.DiceScore
          init_args:
            num_classes: *NUM_CLASSES
            include_background: false
            average: macro
            input_format: one-hot
        - class_path: torchmetrics.ClasswiseWrapper
          init_args:
            metric:
              class_path: eva_coralbay.evaluation.PerClassDiceScore
              init_args:
                include_background: true
                num_classes: *NUM_CLASSES
                input_format: one-hot
            prefix: DiceScore_
            labels:@metric_labels
data:
  class_path: eva.DataModule
  init_args:
    datasets:
      train:
        class_path: @dataset_class
        init_args: &DATASET_ARGS
          root: ${oc.env:DATA_ROOT, ./data/@task_id}
          split: train
          # The preprocessing the model declares (orientation, spacing, HU window): a registry
          # name, by default the model's own, or a mapping such as {spacing: [2, 2, 2]}.
          profile: &PROFILE ${oc.decode:${oc.env:PROFILE, @model_env}}
          allow_incomplete: ${oc.env:ALLOW_INCOMPLETE, false}
@dataset_args\
          transforms:
            class_path: torchvision.transforms.v2.Compose
            init_args:
              transforms:
                - class_path: eva.vision.data.transforms.CropForeground
                - class_path: eva.vision.data.transforms.SpatialPad
                  init_args:
                    spatial_size: *ROI_SIZE
                - class_path: eva.vision.data.transforms.RandCropByLabelClasses
                  init_args:
                    spatial_size: *ROI_SIZE
                    num_samples: ${oc.env:SAMPLE_BATCH_SIZE, 4}
                    num_classes: *NUM_CLASSES
                    ratios: ${oc.env:SAMPLE_CLASS_RATIOS, null}
                - class_path: eva.vision.data.transforms.RandFlip
                  init_args:
                    spatial_axes: [0, 1, 2]
                - class_path: eva_coralbay.evaluation.RandRotate90Axial
                  init_args:
                    profile: *PROFILE
                - class_path: eva.vision.data.transforms.RandScaleIntensity
                  init_args:
                    factors: 0.1
                    prob: 0.1
                - class_path: eva.vision.data.transforms.RandShiftIntensity
                  init_args:
                    offsets: 0.1
                    prob: 0.1
      val:
        class_path: @dataset_class
        init_args:
          <<: *DATASET_ARGS
          split: val
          transforms:
            class_path: torchvision.transforms.v2.Compose
            init_args:
              transforms:
                - class_path: eva.vision.data.transforms.CropForeground
    dataloaders:
      train:
        batch_size: ${oc.env:BATCH_SIZE, 2}
        num_workers: &N_DATA_WORKERS ${oc.env:N_DATA_WORKERS, 8}
        # null: torch's default with workers, and N_DATA_WORKERS=0 works too (with
        # PERSISTENT_WORKERS=false).
        prefetch_factor: null
        persistent_workers: &PERSISTENT_WORKERS ${oc.env:PERSISTENT_WORKERS, true}
        shuffle: true
        collate_fn: eva.vision.data.dataloaders.collate_fn.collection_collate
        worker_init_fn: eva.vision.data.dataloaders.seed_worker
      val:
        batch_size: 1
        num_workers: *N_DATA_WORKERS
        prefetch_factor: null
        persistent_workers: *PERSISTENT_WORKERS
""")

CLASSIFICATION_TEMPLATE = _Template("""\
---
@header
trainer:
  class_path: eva.Trainer
  init_args:
    n_runs: &N_RUNS ${oc.env:N_RUNS, 5}
    default_root_dir: &OUTPUT_ROOT ${oc.env:OUTPUT_ROOT, logs/@model_env/@task_dir}
    max_steps: &MAX_STEPS ${oc.env:MAX_STEPS, 12500}
    checkpoint_type: ${oc.env:CHECKPOINT_TYPE, best}
    callbacks:
      - class_path: eva.callbacks.ConfigurationLogger
      - class_path: lightning.pytorch.callbacks.LearningRateMonitor
        init_args:
          logging_interval: epoch
      - class_path: lightning.pytorch.callbacks.ModelCheckpoint
        init_args:
          filename: best
          save_last: ${oc.env:SAVE_LAST, false}
          save_top_k: 1
          monitor: &MONITOR_METRIC ${oc.env:MONITOR_METRIC, val/@monitor}
          mode: &MONITOR_METRIC_MODE ${oc.env:MONITOR_METRIC_MODE, max}
      - class_path: lightning.pytorch.callbacks.EarlyStopping
        init_args:
          min_delta: 0
          patience: 400
          monitor: *MONITOR_METRIC
          mode: *MONITOR_METRIC_MODE
      # Per-case correctness of the final evaluations, written beside results.json for the
      # leaderboard's confidence intervals.
      - class_path: eva_coralbay.evaluation.PerCaseScores
        init_args:
          class_names:@per_case_names
      # results.json also when a metric is NaN: eva 0.4.5 crashes on it over several runs.
      - class_path: eva_coralbay.evaluation.NanSafeResults
      - class_path: eva.callbacks.ClassificationEmbeddingsWriter
        init_args:
          output_dir: &DATASET_EMBEDDINGS_ROOT @embeddings_dir
          dataloader_idx_map:
@idx_map
          backbone:
            # The plugin's ModelFromRegistry knows radiology/coralbay* and every eva backbone;
            # without out_indices the encoder returns its multi-scale embedding (24 F dims).
            class_path: eva_coralbay.models.ModelFromRegistry
            init_args:
              model_name: @model_env
              model_extra_kwargs: ${oc.env:MODEL_EXTRA_KWARGS, null}
          overwrite: false
    logger:
      - class_path: lightning.pytorch.loggers.TensorBoardLogger
        init_args:
          save_dir: *OUTPUT_ROOT
          name: ""
model:
  class_path: eva.HeadModule
  init_args:
    head:
      class_path: torch.nn.Linear
      init_args:
        in_features: ${oc.env:IN_FEATURES, 1152}
        out_features: @out_features
    criterion: @criterion
    optimizer:
      class_path: torch.optim.AdamW
      init_args:
        lr: ${oc.env:LR_VALUE, 0.0003}
    lr_scheduler:
      class_path: torch.optim.lr_scheduler.CosineAnnealingLR
      init_args:
        T_max: *MAX_STEPS
        eta_min: 0.0
    metrics:
      common:
        - class_path: eva.metrics.AverageLoss
@metrics
data:
  class_path: eva.DataModule
  init_args:
    datasets:
@embedding_datasets
      predict:
@predict_datasets
    dataloaders:
      # Embeddings are small: the main process loads them faster than spawned workers that
      # each import eva first.
@embedding_loaders
      predict:
        batch_size: ${oc.env:PREDICT_BATCH_SIZE, 8}
        num_workers: ${oc.env:N_DATA_WORKERS, 4}
        prefetch_factor: null
        persistent_workers: false
""")


GENERATED_NOTE = (
    "Environment variables and outputs: docs/evaluation.md. Generated by `python -m "
    "eva_coralbay.evaluation.configs` from one template: edit the template, not this file."
)


def _header(title: str, command: str, about: str) -> str:
    """The YAML comment at the top of a config: what it is, how to run it, its data."""
    paragraphs = [title, about, GENERATED_NOTE]
    lines = [
        textwrap.fill(paragraph, width=100, initial_indent="# ", subsequent_indent="# ")
        for paragraph in paragraphs
    ]
    lines.insert(1, f"#   {command}")
    return "\n".join(lines)


def _block_list(items: Sequence[str], indent: int) -> str:
    """A YAML block list, each item on its own line, starting on the next line."""
    pad = " " * indent
    return "".join(f"\n{pad}- {item}" for item in items)


def segmentation_tasks() -> list[SegmentationTask]:
    """One config per segmentation adapter, then the generic DecathlonFormat one."""
    tasks = [
        SegmentationTask(
            task_id=adapter.task_id,
            title=adapter.title,
            dataset_class=f"eva_coralbay.data.adapters.{adapter.__name__}",
            class_names=tuple(adapter.canonical_classes),
            about=(
                f"Data: DATA_ROOT holds the release as docs/tasks.md (`{adapter.task_id}`) "
                f"describes it; licence: {adapter.license.split(' (')[0]}."
            ),
            dataset_args="          download: ${oc.env:DOWNLOAD_DATA, false}\n",
        )
        for adapter in adapters.SEGMENTATION_ADAPTERS
    ]
    tasks.append(
        SegmentationTask(
            task_id="decathlon_format",
            title="Your own CT dataset in the Decathlon / nnU-Net raw layout",
            dataset_class="eva_coralbay.data.adapters.DecathlonFormat",
            class_names=None,
            about=(
                "Data: DATA_ROOT holds dataset.json (labels, and a `validation` list of case "
                "ids), imagesTr/ and labelsTr/ (docs/evaluation.md). NUM_CLASSES: the number of "
                "labels, background included; TASK_ID names the output folder (and the "
                "leaderboard task)."
            ),
            dataset_args=(
                "          num_classes: *NUM_CLASSES\n          fold: ${oc.env:FOLD, 0}\n"
            ),
            num_classes="${oc.env:NUM_CLASSES, 2}",
            task_id_env=True,
        )
    )
    return tasks


def _medmnist_predict(class_name: str, task_id: str) -> str:
    lines = []
    for index, split in enumerate(("train", "val", "test")):
        lines.append(f"        - class_path: eva_coralbay.data.adapters.{class_name}")
        if index == 0:
            lines += [
                "          init_args: &PREDICT_DATASET_ARGS",
                f"            root: ${{oc.env:DATA_ROOT, ./data/{task_id}}}",
                "            split: train",
                "            size: 64",
                "            download: ${oc.env:DOWNLOAD_DATA, false}",
                "            allow_incomplete: ${oc.env:ALLOW_INCOMPLETE, false}",
            ]
        else:
            lines += [
                "          init_args:",
                "            <<: *PREDICT_DATASET_ARGS",
                f"            split: {split}",
            ]
    return "\n".join(lines)


def _organ_patches_predict(source: str, data_root: str, classes: str, source_args: str) -> str:
    lines = []
    for index, split in enumerate(("train", "val")):
        lines.append("        - class_path: eva_coralbay.data.adapters.OrganPatches")
        if index == 0:
            lines += [
                "          init_args: &PREDICT_DATASET_ARGS",
                "            source:",
                f"              class_path: eva_coralbay.data.adapters.{source}",
                "              init_args: &SOURCE_ARGS",
                f"                root: ${{oc.env:DATA_ROOT, {data_root}}}",
                "                split: train",
                "                # The preprocessing the model declares (see the segmentation "
                "configs).",
                f"                profile: ${{oc.decode:${{oc.env:PROFILE, {MODEL_ENV}}}}}",
                "                allow_incomplete: ${oc.env:ALLOW_INCOMPLETE, false}",
                *source_args.splitlines(),
                "            patch_size: ${oc.env:PATCH_SIZE, 64}",
                f"            classes: {classes}",
                "            num_classes: *NUM_CLASSES",
                "            min_voxels: ${oc.env:MIN_VOXELS, 100}",
            ]
        else:
            lines += [
                "          init_args:",
                "            <<: *PREDICT_DATASET_ARGS",
                "            source:",
                f"              class_path: eva_coralbay.data.adapters.{source}",
                "              init_args:",
                "                <<: *SOURCE_ARGS",
                f"                split: {split}",
            ]
    return "\n".join(lines)


def classification_tasks() -> list[ClassificationTask]:
    """MedMNIST-3D, organ patches of TotalSegmentator, organ patches of a DecathlonFormat set."""
    organ_classes = "${oc.env:ORGAN_CLASSES, [" + ", ".join(TOTALSEGMENTATOR_ORGANS) + "]}"
    return [
        ClassificationTask(
            task_id=adapter.task_id,
            title=f"{adapter.title} ({'binary' if len(names) == 2 else 'multiclass'})",
            class_names=tuple(names),
            predict_datasets=_medmnist_predict(adapter.__name__, adapter.task_id),
            splits=("train", "val", "test"),
            about=(
                f"Data: DATA_ROOT holds {adapter.flag}_64.npz (docs/tasks.md, "
                f"`{adapter.task_id}`); DOWNLOAD_DATA=true fetches it. MedMNIST volumes are "
                "already cropped and scaled to [0, 1]: no CT profile applies."
            ),
        )
        for adapter in (adapters.OrganMNIST3D, adapters.NoduleMNIST3D)
        for names in (adapter.class_names(),)
    ] + [
        ClassificationTask(
            task_id="totalsegmentator_v2_organs",
            title="Organ patches of a segmentation dataset (default: TotalSegmentator v2)",
            class_names=None,
            predict_datasets=_organ_patches_predict(
                "${oc.env:ORGAN_SOURCE, TotalSegmentatorV2}",
                "./data/totalsegmentator_v2",
                organ_classes,
                "",
            ),
            splits=("train", "val"),
            about=(
                "Which organ is this 64^3 patch (96 mm on CoralBay's grid)? Task "
                "totalsegmentator_v2_organs: DATA_ROOT holds TotalSegmentator v2 (docs/tasks.md). "
                "For another source set ORGAN_SOURCE (an adapter class name), ORGAN_CLASSES, "
                "NUM_CLASSES and TASK_ID together."
            ),
            num_classes="${oc.env:NUM_CLASSES, " + str(len(TOTALSEGMENTATOR_ORGANS)) + "}",
            class_names_expression=organ_classes,
            task_id_env=True,
            file_stem="organ_patches",
        ),
        ClassificationTask(
            task_id="decathlon_format_organs",
            title="Organ patches of your own CT dataset in the Decathlon / nnU-Net raw layout",
            class_names=None,
            predict_datasets=_organ_patches_predict(
                "DecathlonFormat",
                "./data/decathlon_format",
                "${oc.env:ORGAN_CLASSES, null}",
                "                fold: ${oc.env:FOLD, 0}",
            ),
            splits=("train", "val"),
            about=(
                "Which organ is this 64^3 patch? DATA_ROOT as for decathlon_format.yaml; "
                "NUM_CLASSES: the number of organ classes (all foreground labels, or "
                "ORGAN_CLASSES); TASK_ID names the output folder (and the leaderboard task)."
            ),
            num_classes="${oc.env:NUM_CLASSES, 2}",
            class_names_expression="${oc.env:ORGAN_CLASSES, null}  # null: the class indices",
            task_id_env=True,
        ),
    ]


def _task_dir(task_id: str, from_env: bool) -> str:
    return f"${{oc.env:TASK_ID, {task_id}}}" if from_env else task_id


def render_segmentation(task: SegmentationTask) -> str:
    """The YAML text of one segmentation config."""
    if task.class_names is not None:
        num_classes = str(len(task.class_names))
        per_case_names = _block_list(task.class_names, 12)
        metric_labels = _block_list(
            [f"{index}_{name}" for index, name in enumerate(task.class_names)], 14
        )
    else:
        assert task.num_classes is not None
        num_classes = task.num_classes
        per_case_names = " null  # the dataset's classes"
        metric_labels = " ${oc.env:CLASS_LABELS, null}  # null: the class indices"
    return SEGMENTATION_TEMPLATE.substitute(
        header=_header(
            f"{task.title}: segmentation with a frozen encoder and a SwinUNETR decoder, eva's "
            "radiology leaderboard protocol.",
            f"eva fit --config {SEGMENTATION_DIR / task.task_id}.yaml",
            task.about,
        ),
        model_env=MODEL_ENV,
        task_id=task.task_id,
        task_dir=_task_dir(task.task_id, task.task_id_env),
        per_case_names=per_case_names,
        num_classes=num_classes,
        metric_labels=metric_labels,
        dataset_class=task.dataset_class,
        dataset_args=task.dataset_args,
    )


def render_classification(task: ClassificationTask) -> str:
    """The YAML text of one offline classification config."""
    if task.class_names is not None:
        count = len(task.class_names)
        num_classes = str(count)
        per_case_names = _block_list(task.class_names, 12)
    else:
        assert task.num_classes is not None
        count, num_classes = 0, task.num_classes
        per_case_names = f" {task.class_names_expression}"
    binary = count == 2
    if binary:
        metrics = "        - class_path: eva.metrics.BinaryClassificationMetrics"
        monitor, out_features, criterion = (
            "BinaryBalancedAccuracy",
            "1",
            "torch.nn.BCEWithLogitsLoss",
        )
    else:
        metrics = (
            "        # MulticlassAccuracy with average=macro is the balanced accuracy.\n"
            "        - class_path: eva.metrics.MulticlassClassificationMetrics\n"
            "          init_args:\n"
            "            num_classes: *NUM_CLASSES"
        )
        monitor, out_features, criterion = (
            "MulticlassAccuracy",
            f"&NUM_CLASSES {num_classes}",
            "torch.nn.CrossEntropyLoss",
        )
    embedding_datasets, embedding_loaders = [], []
    for index, split in enumerate(task.splits):
        embedding_datasets.append(f"      {split}:")
        embedding_datasets.append(
            "        class_path: eva.datasets.EmbeddingsClassificationDataset"
        )
        if index == 0:
            embedding_datasets += [
                "        init_args: &DATASET_ARGS",
                "          root: *DATASET_EMBEDDINGS_ROOT",
                "          manifest_file: manifest.csv",
                "          split: train",
            ]
            if binary:
                embedding_datasets += [
                    "          target_transforms:",
                    "            class_path: torchvision.transforms.v2.ToDtype",
                    "            init_args:",
                    "              dtype: torch.float32",
                ]
            embedding_loaders += [
                f"      {split}:",
                "        batch_size: &BATCH_SIZE ${oc.env:BATCH_SIZE, 256}",
                "        num_workers: 0",
                "        prefetch_factor: null",
                "        persistent_workers: false",
                "        shuffle: true",
            ]
        else:
            embedding_datasets += [
                "        init_args:",
                "          <<: *DATASET_ARGS",
                f"          split: {split}",
            ]
            embedding_loaders += [
                f"      {split}:",
                "        batch_size: *BATCH_SIZE",
                "        num_workers: 0",
                "        prefetch_factor: null",
                "        persistent_workers: false",
            ]
    return CLASSIFICATION_TEMPLATE.substitute(
        header=_header(
            f"{task.title}: a linear probe on the frozen multi-scale embedding, eva's radiology "
            "leaderboard protocol.",
            f"eva predict_fit --config {CLASSIFICATION_DIR / task.file_name}",
            task.about,
        ),
        model_env=MODEL_ENV,
        task_dir=_task_dir(task.task_id, task.task_id_env),
        embeddings_dir="${oc.env:EMBEDDINGS_ROOT, ./data/embeddings}/"
        + f"{MODEL_ENV}/{_task_dir(task.task_id, task.task_id_env)}",
        monitor=monitor,
        per_case_names=per_case_names,
        idx_map="\n".join(
            f"            {index}: {split}" for index, split in enumerate(task.splits)
        ),
        out_features=out_features,
        criterion=criterion,
        metrics=metrics,
        embedding_datasets="\n".join(embedding_datasets),
        predict_datasets=task.predict_datasets,
        embedding_loaders="\n".join(embedding_loaders),
    )


def expected_configs() -> dict[Path, str]:
    """Every config file (relative to the repository root) and its text."""
    files = {
        SEGMENTATION_DIR / f"{task.task_id}.yaml": render_segmentation(task)
        for task in segmentation_tasks()
    }
    for task in classification_tasks():
        files[CLASSIFICATION_DIR / task.file_name] = render_classification(task)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Writes (or with --check, compares) the configs; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=REPOSITORY_ROOT, help="repository root")
    parser.add_argument("--check", action="store_true", help="only report differing files")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in expected_configs().items():
        path = args.root / relative
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(relative)
        if not args.check:
            _io.atomic_write_text(path, text)
    for relative in stale:
        print(f"{'differs' if args.check else 'wrote'}: {relative}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
