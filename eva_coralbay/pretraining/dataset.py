"""Multi-crop samples of unlabeled CT and the Lightning data module that batches them."""

from __future__ import annotations

import logging
import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from eva_coralbay.data.profile import resolve_profile
from eva_coralbay.data.scans import find_scans
from eva_coralbay.pretraining.config import CropConfig, DataConfig
from eva_coralbay.pretraining.crops import MultiCrop
from eva_coralbay.pretraining.scans import ScanError, ScanStore

logger = logging.getLogger(__name__)


class MultiCropDataset(Dataset):
    """`samples_per_epoch` multi-crop samples, visiting the scans in turn with fresh crops."""

    def __init__(self, store: ScanStore, multi_crop: MultiCrop, samples_per_epoch: int) -> None:
        """Wraps a prepared store.

        Args:
            store: Standardised scans (`prepare` already called).
            multi_crop: Cuts and augments the views.
            samples_per_epoch: Length of the dataset.
        """
        if not store.stored:
            raise ValueError("the scan store is empty: call prepare() first")
        self.store = store
        self.multi_crop = multi_crop
        self.samples_per_epoch = samples_per_epoch
        self.rank = 0

    def __len__(self) -> int:
        """Samples per epoch."""
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Returns `global_crops` (2, 1, *global size) and `local_crops` (N, 1, *local size)."""
        scan = self.store.stored[index % len(self.store.stored)]
        # torch's generator is seeded per worker (and per run); index and rank keep samples apart.
        draw = int(torch.randint(0, 2**31 - 1, ()).item())
        seed = np.random.SeedSequence([draw, index, self.rank]).generate_state(1)[0]
        views = self.multi_crop(scan, np.random.RandomState(seed))
        sample = {"global_crops": torch.stack([view.as_tensor() for view in views["global"]])}
        if views["local"]:
            sample["local_crops"] = torch.stack([view.as_tensor() for view in views["local"]])
        return sample


class PretrainDataModule(L.LightningDataModule):
    """Finds and standardises the scans once per process, then serves multi-crop batches."""

    def __init__(self, data: DataConfig, crops: CropConfig) -> None:
        """Keeps the settings; `setup` reads the scans.

        Args:
            data: Where the scans are and how they are cached and batched.
            crops: The multi-crop settings.
        """
        super().__init__()
        self.data_config = data
        self.crop_config = crops
        self.dataset: MultiCropDataset | None = None

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if not self.data_config.paths:
            raise ScanError("no pretraining data given: pass --data PATH... or set data.paths")
        profile = resolve_profile(self.data_config.profile)
        multi_crop = MultiCrop(self.crop_config, profile)
        store = ScanStore(
            find_scans(self.data_config.paths),
            profile,
            foreground_hu=self.crop_config.foreground_hu,
            min_shape=(0, 0, 0) if self.crop_config.pad_to_crop else multi_crop.smallest_region(),
            cache_dir=self.data_config.cache_dir,
            skip_bad=self.data_config.skip_bad,
        )
        logger.info("standardising %d scans", len(store.scans))
        store.prepare(workers=min(self.data_config.num_workers, os.cpu_count() or 1))
        self.dataset = MultiCropDataset(store, multi_crop, self.data_config.samples_per_epoch)
        if self.trainer is not None:
            self.dataset.rank = self.trainer.global_rank

    @override
    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise RuntimeError("setup() must run before train_dataloader()")
        workers = self.data_config.num_workers
        return DataLoader(
            self.dataset,
            batch_size=self.data_config.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
