"""Per-case, per-class scores of eva's final evaluations, written beside results.json."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from loguru import logger
from torch.utils import data as torch_data
from torchmetrics.functional.segmentation import dice_score
from typing_extensions import override

from eva_coralbay import _io
from eva_coralbay.tasks import per_case_format

PER_CASE_FILENAME = per_case_format.FILENAME
"""The session-level file name, beside eva's results.json."""

COLUMNS = list(per_case_format.WRITTEN_COLUMNS)
"""The columns of a per-case score table (`tasks.per_case_format`, which the leaderboard reads)."""

_RUN_DIRECTORY = re.compile(r"^run_(\d+)$")


class PerCaseScores(pl.Callback):
    """Records every case's score in eva's final validation and test evaluations.

    Segmentation: the Dice of each foreground class of each case (NaN where the class is absent
    from both the prediction and the reference, as torchmetrics defines it). Classification:
    whether each case was classified correctly (1.0 or 0.0), with its target and prediction in
    the class columns, so balanced accuracy and its bootstrap intervals can be recomputed.

    Scores of evaluations during fitting are not recorded: only the final `validate` / `test`
    passes eva runs after fitting (on the best checkpoint) count, exactly those behind
    results.json. Each run writes `run_<k>/per_case_scores.parquet`; the session folder's
    `per_case_scores.parquet` is rewritten atomically after each evaluation from all runs.
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        include_background: bool = False,
        filename: str = PER_CASE_FILENAME,
    ) -> None:
        """Initializes the callback.

        Args:
            class_names: Name of every class index (background included for segmentation);
                when None, the evaluated dataset's `classes` where it has them, else the index
                as text.
            include_background: Whether segmentation class 0 is scored too.
            filename: The name of the parquet files.
        """
        super().__init__()
        self._class_names = list(class_names) if class_names is not None else None
        self._include_background = include_background
        self._filename = filename
        self._rows: list[dict[str, Any]] = []
        self._sample_offsets: dict[int, int] = {}
        self._dataset_classes: list[str] | None = None

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.state.fn == "validate":
            self._record_batch(trainer, outputs, "val", dataloader_idx)

    @override
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._record_batch(trainer, outputs, "test", dataloader_idx)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._write(trainer, "val")

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, "test")

    def _reset(self) -> None:
        self._rows = []
        self._sample_offsets = {}

    def _class_name(self, index: int) -> str:
        names = self._class_names if self._class_names is not None else self._dataset_classes
        if names is not None and index < len(names):
            return names[index]
        return str(index)

    def _record_batch(
        self, trainer: pl.Trainer, outputs: Any, stage: str, dataloader_idx: int
    ) -> None:
        if not isinstance(outputs, dict) or "predictions" not in outputs:
            return
        predictions = outputs["predictions"].detach()
        targets = outputs["targets"].detach()
        batch_size = predictions.shape[0]
        first_index = self._sample_offsets.get(dataloader_idx, 0)
        self._sample_offsets[dataloader_idx] = first_index + batch_size
        case_ids = [
            _case_id(trainer, stage, dataloader_idx, first_index + offset, outputs, offset)
            for offset in range(batch_size)
        ]
        dataset = _dataset(trainer, stage, dataloader_idx)
        classes = getattr(dataset, "classes", None)
        self._dataset_classes = [str(name) for name in classes] if classes else None
        context = {
            "run": _run_index(trainer),
            "stage": stage,
            "dataloader": dataloader_idx,
            "dataset_size": _length(dataset),
            "world_size": trainer.world_size,
        }
        if predictions.ndim >= 4:
            self._record_segmentation(predictions, targets, case_ids, context)
        else:
            self._record_classification(predictions, targets, case_ids, context)

    def _record_segmentation(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        case_ids: list[str],
        context: dict[str, Any],
    ) -> None:
        num_classes = logits.shape[1]
        predicted = logits.argmax(dim=1)
        reference = _as_label_map(targets, num_classes, spatial_dims=logits.ndim - 2)
        scores = dice_score(
            predicted.long(),
            reference.long(),
            num_classes=num_classes,
            include_background=self._include_background,
            average="none",
            input_format="index",
        ).reshape(len(case_ids), -1)
        first_class = 0 if self._include_background else 1
        for case_index, case_id in enumerate(case_ids):
            for column, score in enumerate(scores[case_index].tolist()):
                class_index = first_class + column
                self._rows.append(
                    {
                        **context,
                        "case_id": case_id,
                        "class_index": class_index,
                        "class": self._class_name(class_index),
                        "metric": "dice",
                        "score": float(score),
                        "predicted_index": None,
                    }
                )

    def _record_classification(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        case_ids: list[str],
        context: dict[str, Any],
    ) -> None:
        if logits.ndim == 2 and logits.shape[1] > 1:
            predicted = logits.argmax(dim=1)
        else:
            predicted = (logits.reshape(len(case_ids)) > 0).long()
        reference = targets.reshape(len(case_ids)).long()
        for case_id, target, prediction in zip(
            case_ids, reference.tolist(), predicted.tolist(), strict=True
        ):
            self._rows.append(
                {
                    **context,
                    "case_id": case_id,
                    "class_index": int(target),
                    "class": self._class_name(int(target)),
                    "metric": "correct",
                    "score": float(target == prediction),
                    "predicted_index": int(prediction),
                }
            )

    def _write(self, trainer: pl.Trainer, stage: str) -> None:
        # eva's Trainer broadcasts `log_dir` from process 0: every process must ask for it, or
        # process 0 waits in the broadcast for processes that have already returned.
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or not self._rows or log_dir is None:
            return
        if trainer.world_size > 1:
            logger.warning(
                f"Per-case scores of a {trainer.world_size}-process run hold only process 0's "
                "cases; the leaderboard refuses such a file. Evaluate on one device to submit "
                "per-case scores."
            )
        run_directory = pathlib.Path(log_dir)
        run_table = pd.DataFrame(self._rows, columns=COLUMNS).astype(
            {"predicted_index": "Int64", "dataset_size": "Int64"}
        )
        run_file = run_directory / self._filename
        if run_file.exists():
            previous = pd.read_parquet(run_file)
            other_stages = previous.loc[previous["stage"] != stage]
            run_table = pd.concat([other_stages, run_table], ignore_index=True)
        _write_parquet_atomically(run_table, run_file)
        session_directory = _session_directory(trainer)
        session_table = pd.concat(
            [
                pd.read_parquet(path)
                for path in sorted(session_directory.glob(f"run_*/{self._filename}"))
            ]
        ).sort_values(["run", "stage", "dataloader", "case_id", "class_index"], kind="stable")
        _write_parquet_atomically(session_table, session_directory / self._filename)
        logger.info(f"Per-case scores written to {session_directory / self._filename}")


def _as_label_map(targets: torch.Tensor, num_classes: int, spatial_dims: int) -> torch.Tensor:
    """Returns (B, *spatial) class indices from index or one-hot targets."""
    if targets.ndim == spatial_dims + 2:
        return targets.argmax(dim=1) if targets.shape[1] == num_classes > 1 else targets[:, 0]
    return targets


def _run_index(trainer: pl.Trainer) -> int:
    match = _RUN_DIRECTORY.match(pathlib.Path(trainer.log_dir or "").name)
    return int(match.group(1)) if match else 0


def _session_directory(trainer: pl.Trainer) -> pathlib.Path:
    session = getattr(trainer, "default_log_dir", None)
    if isinstance(session, str):
        return pathlib.Path(session)
    log_dir = pathlib.Path(trainer.log_dir or ".")
    return log_dir.parent if _RUN_DIRECTORY.match(log_dir.name) else log_dir


def _case_id(
    trainer: pl.Trainer, stage: str, dataloader_idx: int, index: int, outputs: Any, offset: int
) -> str:
    """Names a case: its metadata's case id, else its dataset's file name, else its index.

    Evaluation dataloaders are not shuffled, so the running sample count is the dataset index.
    """
    metadata = outputs.get("metadata") if isinstance(outputs, dict) else None
    if isinstance(metadata, dict):
        for key in ("case_id", "filename", "path"):
            value = metadata.get(key)
            if isinstance(value, (list, tuple)) and len(value) > offset:
                return str(value[offset])
    filename = getattr(_dataset(trainer, stage, dataloader_idx), "filename", None)
    if callable(filename):
        try:
            return str(filename(index))
        except (IndexError, KeyError):
            pass
    return f"{stage}-{dataloader_idx}-{index}"


def _length(dataset: Any) -> int | None:
    """The number of cases of a dataset, or None when it does not say (no `__len__`)."""
    try:
        return len(dataset)
    except TypeError:
        return None


def _dataset(trainer: pl.Trainer, stage: str, dataloader_idx: int) -> Any:
    """The dataset behind an evaluation dataloader, or None."""
    dataloaders = trainer.test_dataloaders if stage == "test" else trainer.val_dataloaders
    if isinstance(dataloaders, torch_data.DataLoader):
        dataloaders = [dataloaders]
    if isinstance(dataloaders, (list, tuple)) and dataloader_idx < len(dataloaders):
        return dataloaders[dataloader_idx].dataset
    return None


def _write_parquet_atomically(table: pd.DataFrame, path: pathlib.Path) -> None:
    with _io.atomic_path(path) as temporary:
        table.to_parquet(temporary, index=False)
