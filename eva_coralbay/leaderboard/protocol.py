"""The protocol hash: what makes two eva runs comparable, reduced to one sha256.

The hash covers the resolved `config.yaml` eva writes beside results.json, minus what does
not change the evaluation protocol:

- the model under test: any `encoder` / `backbone` subtree and the keys `model_name`,
  `model_kwargs`, `model_extra_kwargs`, `checkpoint`, plus what follows from the model: the
  sizes (`in_features`, `feature_size`, `project_dims`, `out_indices`) and the preprocessing
  `profile` it declares (the plugin's configs name it by the model: `radiology/coralbay`,
  `radiology/voco_b`, ...);
- paths and I/O: `root`, `data_root`, `output_dir`, `save_dir`, `dirpath`, `cache_dir`,
  `manifest_file`, `download`, `overwrite`, `mmap_mode`, the trainer's `default_root_dir` and
  `logger`;
- seeds (`seed`, `seed_everything`) and the number of runs (`n_runs`; the runs are the values);
- speed and display: `num_workers`, `pin_memory`, `persistent_workers`, `prefetch_factor`,
  `worker_init_fn`, `sw_batch_size`, `refresh_rate`, `accelerator`, `devices`, `num_nodes`,
  `strategy`, `log_every_n_steps`, `enable_progress_bar`, `enable_model_summary`,
  `num_sanity_val_steps`, `profiler`, and the predict dataloader's settings;
- callbacks, except the fields of `ModelCheckpoint` and `EarlyStopping` that choose the
  evaluated checkpoint (`monitor`, `mode`, `patience`, `min_delta`);
- the label-efficiency settings `train_cases` and `train_samples_per_class` when they are `all`
  (the default: runs from configs with and without them hash alike; a subset such as
  `train_cases: 5` is in), and the plugin's probe dataset class that carries the second, which
  is named as the eva class it extends (`EQUIVALENT_CLASS_PATHS`);
- the trainer's `precision` when it is float32 (Lightning's default: runs from configs that name
  it and from configs that do not hash alike). Mixed precision (`bf16-mixed`, ...) is in.

Everything else is in: datasets and their transforms, splits, the decoder or head, loss,
optimiser, schedule, steps, inferer (ROI, overlap), metrics and post-processing. Strings that
eva's `${oc.env:NAME, default}` resolved are read back as YAML scalars (`'5'` becomes `5`), so a
value typed in the YAML and the same value taken from the environment hash alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

FLOAT32_PRECISIONS = frozenset({"32", "32-true"})
"""Lightning's spellings of its default precision, left out of the hash."""

EXCLUDED_KEYS = frozenset(
    {
        # the model under test
        "encoder",
        "backbone",
        "model_name",
        "model_kwargs",
        "model_extra_kwargs",
        "checkpoint",
        "in_features",
        "feature_size",
        "project_dims",
        "out_indices",
        "profile",
        # paths and I/O
        "root",
        "data_root",
        "output_dir",
        "save_dir",
        "dirpath",
        "cache_dir",
        "manifest_file",
        "download",
        "overwrite",
        "mmap_mode",
        "default_root_dir",
        "logger",
        # seeds and runs
        "seed",
        "seed_everything",
        "n_runs",
        # speed and display
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "prefetch_factor",
        "worker_init_fn",
        "sw_batch_size",
        "refresh_rate",
        "accelerator",
        "devices",
        "num_nodes",
        "strategy",
        "log_every_n_steps",
        "enable_progress_bar",
        "enable_model_summary",
        "num_sanity_val_steps",
        "profiler",
    }
)
"""Keys dropped wherever they appear in the config."""

LABEL_EFFICIENCY_KEYS = frozenset({"train_cases", "train_samples_per_class"})
"""The label-efficiency settings: at `all` they are left out, a subset is a task variant."""

EQUIVALENT_CLASS_PATHS = {
    "eva_coralbay.evaluation.EmbeddingsClassificationSubset": (
        "eva.datasets.EmbeddingsClassificationDataset"
    ),
}
"""Plugin classes that are an eva class plus a label-efficiency setting, hashed as that class:
with every sample they compute the same thing, so probes run before the setting existed stay
comparable; a subset differs by the setting itself."""

CALLBACK_FIELDS: dict[str, frozenset[str]] = {
    "ModelCheckpoint": frozenset({"monitor", "mode"}),
    "EarlyStopping": frozenset({"monitor", "mode", "patience", "min_delta"}),
}
"""The callbacks kept in the protocol, each with the only fields that matter."""


def _typed(value: str) -> Any:
    """Reads a resolved `${oc.env:...}` string back as the YAML scalar or list it stands for."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, (bool, int, float)):
        return parsed
    if isinstance(parsed, list):
        return _normalise(parsed)
    if parsed is None and value.strip() in ("null", "Null", "NULL", "~"):
        return None
    return value


def _normalise(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            str(key): _normalise(_equivalent_class(str(key), value))
            for key, value in node.items()
            if str(key) not in EXCLUDED_KEYS and not _all_training_cases(str(key), value)
        }
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if isinstance(node, str):
        return _typed(node)
    return node


def _all_training_cases(key: str, value: Any) -> bool:
    """Whether this is a label-efficiency setting at its default (every training label).

    A run on every case hashes like one from a config without the setting; a run on a subset
    (`train_cases: 5`, `train_samples_per_class: 5`) is a task variant with a protocol of its
    own.
    """
    return key in LABEL_EFFICIENCY_KEYS and (value is None or str(value).strip().lower() == "all")


def _equivalent_class(key: str, value: Any) -> Any:
    """A `class_path` value as the eva class it is equivalent to (`EQUIVALENT_CLASS_PATHS`)."""
    if key == "class_path" and isinstance(value, str):
        return EQUIVALENT_CLASS_PATHS.get(value, value)
    return value


def _protocol_callbacks(callbacks: Any) -> list[Any]:
    kept = []
    for callback in callbacks if isinstance(callbacks, list) else []:
        if not isinstance(callback, Mapping):
            continue
        name = str(callback.get("class_path", "")).rpartition(".")[2]
        if name in CALLBACK_FIELDS:
            init_args = callback.get("init_args") or {}
            fields = {key: init_args[key] for key in CALLBACK_FIELDS[name] if key in init_args}
            kept.append({"class": name, **fields})
    return kept


def protocol_view(config: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the protocol-relevant part of a resolved eva config (see the module docstring)."""
    view = dict(config)
    trainer = view.get("trainer")
    if isinstance(trainer, Mapping):
        trainer = dict(trainer)
        init_args = dict(trainer.get("init_args") or {})
        callbacks = _protocol_callbacks(init_args.pop("callbacks", None))
        if str(init_args.get("precision")) in FLOAT32_PRECISIONS:
            del init_args["precision"]
        if callbacks:
            init_args["callbacks"] = callbacks
        trainer["init_args"] = init_args
        view["trainer"] = trainer
    data = view.get("data")
    if isinstance(data, Mapping):
        data_args = dict(data.get("init_args") or {})
        dataloaders = data_args.get("dataloaders")
        if isinstance(dataloaders, Mapping) and "predict" in dataloaders:
            data_args["dataloaders"] = {
                key: value for key, value in dataloaders.items() if key != "predict"
            }
        view["data"] = {**data, "init_args": data_args}
    return _normalise(view)


def protocol_hash(config: Mapping[str, Any]) -> str:
    """Returns the sha256 (hex) of the canonical JSON of `protocol_view(config)`."""
    canonical = json.dumps(
        protocol_view(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
