"""OrganMNIST3D and NoduleMNIST3D as eva classification datasets that feed its embeddings writer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.datasets.vision import VisionDataset
from typing_extensions import override

from eva_coralbay import tasks
from eva_coralbay.data.adapters import download
from eva_coralbay.data.adapters.validation import DatasetValidationError, Problem

MEDMNIST_HOMEPAGE = "https://medmnist.com/"


class MedMNIST3D(VisionDataset[eva_tv_tensors.Volume, torch.Tensor]):
    """A MedMNIST 3D dataset read straight from its .npz (no `medmnist` dataset object).

    Samples are `(volume, target, metadata)`: a float32 eva `Volume` `[1, D, H, W]` in [0, 1]
    (the stored uint8 / 255), a scalar int64 target and `{"index": i}`. `filename(i)` names each
    sample uniquely ("train_00012"), which eva's embeddings writer needs and `medmnist`'s own
    dataset classes (and eva's wrappers of them) lack; their targets are also shaped (1,).

    Native layout: `root/<flag>.npz` (28^3) or `root/<flag>_64.npz` (64^3) as medmnist downloads
    it, holding `<split>_images` (N, D, H, W) uint8 and `<split>_labels` (N, 1).
    """

    flag: ClassVar[str]
    """The medmnist flag, e.g. "organmnist3d"."""

    task_id: ClassVar[str]
    title: ClassVar[str]
    homepage: ClassVar[str] = MEDMNIST_HOMEPAGE
    split_names: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __init__(
        self,
        root: str,
        split: str,
        size: int = 64,
        transforms: Callable | None = None,
        download: bool = False,
        allow_incomplete: bool = False,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: Folder holding (or receiving) the .npz file.
            split: "train", "val" or "test".
            size: Edge length of the volumes: 28 or 64.
            transforms: Transforms applied to `(volume, target)`.
            download: Whether `prepare_data` downloads the .npz (MD5-verified) when missing.
            allow_incomplete: Accept a file with other sample counts than the release.
        """
        super().__init__(transforms=transforms)
        if split not in self.split_names:
            raise ValueError(f"{type(self).__name__}: split must be one of {self.split_names}")
        if size not in (28, 64):
            raise ValueError(f"{type(self).__name__}: size must be 28 or 64, got {size}")
        self._root = Path(root)
        self._split = split
        self._size = size
        self._download = download
        self._allow_incomplete = allow_incomplete
        self._images: npt.NDArray[np.uint8] | None = None
        self._labels: npt.NDArray[np.integer] | None = None

    @classmethod
    def info(cls) -> dict[str, Any]:
        """Medmnist's description of the dataset (labels, sample counts, URLs, MD5s, licence)."""
        from medmnist.info import INFO

        return INFO[cls.flag]

    @classmethod
    def class_names(cls) -> list[str]:
        """The class names in target order."""
        labels = cls.info()["label"]
        return [labels[key] for key in sorted(labels, key=int)]

    @property
    def license(self) -> str:
        """The data licence."""
        return str(self.info()["license"])

    @property
    @override
    def classes(self) -> list[str]:
        return self.class_names()

    @property
    @override
    def class_to_idx(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.class_names())}

    @property
    def path(self) -> Path:
        """The .npz file."""
        suffix = "" if self._size == 28 else f"_{self._size}"
        return self._root / f"{self.flag}{suffix}.npz"

    def resource(self) -> download.Resource:
        """The Zenodo file with the MD5 medmnist publishes."""
        suffix = "" if self._size == 28 else f"_{self._size}"
        info = self.info()
        return download.Resource(
            url=info[f"url{suffix}"],
            filename=self.path.name,
            md5=info[f"MD5{suffix}"],
            extract=False,
        )

    @override
    def prepare_data(self) -> None:
        if self.path.is_file():
            return
        resource = self.resource()
        if self._download:
            download.fetch(resource, self._root)
            return
        print(
            f"{self.title} was not found at {self.path}. Licence: {self.license}. Set "
            f"download=True, or download {resource.url} (MD5 {resource.md5}) to {self.path}.",
            file=sys.stderr,
        )

    @override
    def configure(self) -> None:
        self._images = None
        self._labels = None

    @override
    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise DatasetValidationError(f"{type(self).__name__} at {self._root}", problems)

    def problems(self) -> list[Problem]:
        """Every problem with the .npz for the selected split."""
        path = str(self.path)
        if not self.path.is_file():
            return [Problem(path, "file is missing (set download=True to fetch it)")]
        try:
            images, labels = self._arrays()
        except Exception as error:  # a truncated zip or a missing key
            return [Problem(path, f"unreadable ({error})")]
        problems = []
        if images.ndim != 4 or images.shape[1:] != (self._size,) * 3:
            problems.append(
                Problem(
                    path,
                    f"{self._split}_images has shape {images.shape}, expected "
                    f"(N, {self._size}, {self._size}, {self._size})",
                )
            )
        if labels.shape[0] != images.shape[0]:
            problems.append(Problem(path, f"{labels.shape[0]} labels for {images.shape[0]} images"))
        expected = int(self.info()["n_samples"][self._split])
        if not self._allow_incomplete and images.shape[0] != expected:
            problems.append(
                Problem(
                    path, f"{self._split} has {images.shape[0]} samples, the release {expected}"
                )
            )
        targets = labels.reshape(labels.shape[0], -1)[:, 0] if labels.size else labels
        outside = np.unique(targets[(targets < 0) | (targets >= len(self.class_names()))])
        if outside.size:
            problems.append(
                Problem(
                    path, f"labels {outside.tolist()} are outside 0..{len(self.class_names()) - 1}"
                )
            )
        return problems

    @override
    def filename(self, index: int) -> str:
        return f"{self._split}_{index:05d}"

    @override
    def __len__(self) -> int:
        return int(self._arrays()[0].shape[0])

    @override
    def load_data(self, index: int) -> eva_tv_tensors.Volume:
        voxels = torch.from_numpy(np.asarray(self._arrays()[0][index], dtype=np.float32) / 255.0)
        # MedMNIST volumes are resized crops without a physical spacing: voxel units.
        return eva_tv_tensors.Volume(voxels[None], affine=torch.eye(4, dtype=torch.float64))

    @override
    def load_target(self, index: int) -> torch.Tensor:
        return torch.tensor(
            int(np.asarray(self._arrays()[1][index]).reshape(-1)[0]), dtype=torch.long
        )

    @override
    def load_metadata(self, index: int) -> dict[str, Any]:
        return {"index": index}

    def _arrays(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.integer]]:
        if self._images is None or self._labels is None:
            with np.load(self.path) as archive:
                self._images = archive[f"{self._split}_images"]
                self._labels = archive[f"{self._split}_labels"]
        return self._images, self._labels  # type: ignore[return-value]


class OrganMNIST3D(MedMNIST3D):
    """OrganMNIST3D: 11 abdominal organs cropped from LiTS CT; 971 / 161 / 610 samples."""

    flag: ClassVar[str] = "organmnist3d"
    task_id: ClassVar[str] = "organmnist"
    title: ClassVar[str] = tasks.CATALOGUE["organmnist"].title


class NoduleMNIST3D(MedMNIST3D):
    """NoduleMNIST3D: benign vs malignant lung nodules from LIDC-IDRI; 1158 / 165 / 310 samples."""

    flag: ClassVar[str] = "nodulemnist3d"
    task_id: ClassVar[str] = "nodulemnist"
    title: ClassVar[str] = tasks.CATALOGUE["nodulemnist"].title
