"""LUNA25: lung nodule malignancy from patches of the scan around each annotated nodule."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from eva.vision.data import tv_tensors as eva_tv_tensors
from eva.vision.data.datasets.vision import VisionDataset
from typing_extensions import override

from eva_coralbay import tasks
from eva_coralbay.data import readers
from eva_coralbay.data.adapters.organ_patches import AIR_HU, patch_volume
from eva_coralbay.data.adapters.validation import DatasetValidationError, Problem
from eva_coralbay.data.profile import PreprocessingProfile, resolve_profile

ANNOTATIONS = "LUNA25_Public_Training_Development_Data.csv"
"""The release's annotation table: one row per nodule annotation."""

IMAGES_DIR = "luna25_images"
"""The release's folder of `<SeriesInstanceUID>.mha` scans."""

REQUIRED_COLUMNS = (
    "PatientID",
    "SeriesInstanceUID",
    "AnnotationID",
    "CoordX",
    "CoordY",
    "CoordZ",
    "label",
)

VAL_FRACTION = 5
"""One patient in five (by a hash of the id) is in the validation split."""


def patient_split(patient_id: str) -> str:
    """A patient's split: fixed, the same on every machine, so no patient is in two splits."""
    digest = hashlib.sha256(str(patient_id).encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") % VAL_FRACTION == 0 else "train"


@dataclasses.dataclass(frozen=True)
class Nodule:
    """One annotated nodule: where it is (world LPS mm) and whether it is malignant."""

    annotation_id: str
    patient_id: str
    series_uid: str
    world_lps: tuple[float, float, float]
    label: int
    row: int
    """Line of the annotation table (header = line 1)."""


class LUNA25(VisionDataset[eva_tv_tensors.Volume, torch.Tensor]):
    """Is this nodule malignant? One patch per annotated nodule, on the model's profile grid.

    Native layout under `root`: `LUNA25_Public_Training_Development_Data.csv` and
    `luna25_images/<SeriesInstanceUID>.mha`. Each annotation's CoordX/Y/Z is a world point in
    the scan's physical (ITK, LPS) space, as the MetaImage header defines it. The scan is read
    with its geometry and standardised by the profile like every other scan (orientation,
    spacing, HU window); the patch is the `patch_size` box of the standardised volume centred
    on the voxel nearest that point, padded with air where it leaves the scan. Splits are by
    patient (a hash of PatientID, one in five to validation), so no patient is in two splits.
    Samples are ordered by scan, so a scan is standardised once for all its nodules.
    """

    task_id: ClassVar[str] = "luna25"
    split_names: ClassVar[tuple[str, ...]] = ("train", "val")

    def __init__(
        self,
        root: str,
        split: str,
        profile: str | PreprocessingProfile | dict[str, Any] = "radiology/coralbay",
        patch_size: int | Sequence[int] = 64,
        transforms: Callable | None = None,
        allow_incomplete: bool = False,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: The folder holding the annotation table and the image folder.
            split: "train" or "val".
            profile: The model's preprocessing (a registry name, a profile or its mapping).
            patch_size: Patch edge(s) in voxels of the profile grid.
            transforms: Transforms applied to `(volume, target)`.
            allow_incomplete: Use the annotations whose scans are present; others are left out.
        """
        super().__init__(transforms=transforms)
        if split not in self.split_names:
            raise ValueError(f"LUNA25: unknown split {split!r}; use one of {self.split_names}")
        size = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"patch_size must be 1 or 3 positive integers, got {patch_size!r}")
        self._root = Path(root)
        self._split = split
        self._profile = resolve_profile(profile)
        self._size: tuple[int, int, int] = (int(size[0]), int(size[1]), int(size[2]))
        self._allow_incomplete = allow_incomplete
        self._nodules: list[Nodule] = []
        self._last: tuple[str, npt.NDArray[np.float32], npt.NDArray[np.float64]] | None = None

    @property
    @override
    def classes(self) -> list[str]:
        return list(tasks.get_benchmark(self.task_id).classes)

    @property
    def nodules(self) -> list[Nodule]:
        """The split's nodules, in sample order (after `configure`)."""
        return list(self._nodules)

    def image_path(self, series_uid: str) -> Path:
        """Where a series' scan lives."""
        return self._root / IMAGES_DIR / f"{series_uid}.mha"

    @override
    def configure(self) -> None:
        nodules = [
            nodule
            for nodule in self._read_annotations()
            if patient_split(nodule.patient_id) == self._split
        ]
        if self._allow_incomplete:
            nodules = [nodule for nodule in nodules if self.image_path(nodule.series_uid).is_file()]
        self._nodules = sorted(
            nodules, key=lambda nodule: (nodule.series_uid, nodule.annotation_id)
        )

    @override
    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise DatasetValidationError(f"LUNA25 at {self._root}", problems)

    def problems(self) -> list[Problem]:
        """A missing table or scans, and annotations outside their scan, each with its file."""
        table = self._root / ANNOTATIONS
        if not table.is_file():
            return [Problem(str(table), "missing: the release's annotation table")]
        try:
            nodules = [
                n for n in self._read_annotations() if patient_split(n.patient_id) == self._split
            ]
        except ValueError as error:
            return [Problem(str(table), str(error))]
        problems = []
        for nodule in nodules:
            image = self.image_path(nodule.series_uid)
            if not image.is_file():
                if not self._allow_incomplete:
                    problems.append(
                        Problem(str(image), f"missing (annotation {nodule.annotation_id})")
                    )
                continue
            try:
                shape, to_index = _mha_geometry(image)
            except (OSError, ValueError) as error:
                problems.append(Problem(str(image), f"unreadable MetaImage header ({error})"))
                continue
            index = to_index(np.asarray(nodule.world_lps))
            if ((index < -0.5) | (index > np.asarray(shape) - 0.5)).any():
                problems.append(
                    Problem(
                        f"{table}:{nodule.row}",
                        f"annotation {nodule.annotation_id} at {list(nodule.world_lps)} mm lies "
                        f"outside its scan {image.name} (voxel {np.round(index, 1).tolist()} of "
                        f"{list(shape)})",
                    )
                )
        return problems

    @override
    def filename(self, index: int) -> str:
        # eva's embeddings writer stores `Path(filename).with_suffix(".pt")`: without an
        # extension of its own, the dots of a DICOM UID would be taken for one, and every
        # nodule of a series would land in one file.
        return f"{self.case_id(index)}.mha"

    def case_id(self, index: int) -> str:
        """The sample's id: series and annotation."""
        nodule = self._nodules[index]
        return f"{nodule.series_uid}/{nodule.annotation_id}"

    @override
    def __len__(self) -> int:
        return len(self._nodules)

    @override
    def __getitem__(self, index: int) -> tuple[eva_tv_tensors.Volume, torch.Tensor, dict[str, Any]]:
        volume, target = self.load_data(index), self.load_target(index)
        volume, target = self._apply_transforms(volume, target)
        return volume, target, self.load_metadata(index)

    @override
    def load_data(self, index: int) -> eva_tv_tensors.Volume:
        nodule = self._nodules[index]
        image, affine = self._standardised(nodule.series_uid)
        centre = self.centre_voxel(nodule, affine)
        return patch_volume(image, affine, centre, self._size, self._profile.scale_hu(AIR_HU))

    @override
    def load_target(self, index: int) -> torch.Tensor:
        return torch.tensor(self._nodules[index].label, dtype=torch.long)

    @override
    def load_metadata(self, index: int) -> dict[str, Any]:
        nodule = self._nodules[index]
        return {"case_id": self.case_id(index), "patient_id": nodule.patient_id}

    @staticmethod
    def centre_voxel(nodule: Nodule, affine: npt.NDArray[np.float64]) -> tuple[int, int, int]:
        """The voxel of a standardised volume (voxel-to-RAS `affine`) nearest the nodule."""
        x, y, z = nodule.world_lps
        ras = np.array([-x, -y, z, 1.0])  # ITK's LPS world -> MONAI's RAS world
        index = np.linalg.inv(affine) @ ras
        rounded = np.rint(index[:3]).astype(int)
        return (int(rounded[0]), int(rounded[1]), int(rounded[2]))

    def _standardised(
        self, series_uid: str
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        # Samples are ordered by scan: keeping the last one serves all of its nodules.
        if self._last is None or self._last[0] != series_uid:
            image, _ = self._profile.apply(readers.read_scan(self.image_path(series_uid)))
            array = np.ascontiguousarray(image.detach().cpu().numpy()[0], dtype=np.float32)
            affine = np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64)  # type: ignore[union-attr]
            self._last = (series_uid, array, affine)
        return self._last[1], self._last[2]

    def _split_annotations(self) -> list[Nodule]:
        return [
            nodule
            for nodule in self._read_annotations()
            if patient_split(nodule.patient_id) == self._split
        ]

    def _read_annotations(self) -> list[Nodule]:
        import csv

        table = self._root / ANNOTATIONS
        with table.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{table}: missing column(s) {missing}")
            nodules = []
            for line, row in enumerate(reader, start=2):
                try:
                    world = (float(row["CoordX"]), float(row["CoordY"]), float(row["CoordZ"]))
                    label = int(float(row["label"]))
                except ValueError as error:
                    raise ValueError(f"{table}:{line}: {error}") from error
                if label not in (0, 1):
                    raise ValueError(f"{table}:{line}: label must be 0 or 1, got {row['label']!r}")
                nodules.append(
                    Nodule(
                        annotation_id=str(row["AnnotationID"]),
                        patient_id=str(row["PatientID"]),
                        series_uid=str(row["SeriesInstanceUID"]),
                        world_lps=world,
                        label=label,
                        row=line,
                    )
                )
        return nodules


_HEADER_FIELD = re.compile(r"^\s*(\w+)\s*=\s*(.*?)\s*$")


def _mha_geometry(
    path: Path,
) -> tuple[tuple[int, ...], Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
    """A MetaImage's shape and its world (LPS) -> continuous voxel index map, from the header.

    Reads only the text header, so checking every annotation of a release costs no voxel reads.
    """
    fields: dict[str, str] = {}
    with path.open("rb") as handle:
        for raw in handle:
            match = _HEADER_FIELD.match(raw.decode("latin-1"))
            if match is None:
                raise ValueError("not a MetaImage header")
            fields[match.group(1)] = match.group(2)
            if match.group(1) == "ElementDataFile":
                break
    try:
        shape = tuple(int(value) for value in fields["DimSize"].split())
        spacing = np.array([float(value) for value in fields["ElementSpacing"].split()])
        origin = np.array(
            [
                float(value)
                for value in (fields.get("Offset") or fields.get("Origin") or "0 0 0").split()
            ]
        )
        matrix = fields.get("TransformMatrix") or fields.get("Rotation") or "1 0 0 0 1 0 0 0 1"
        direction = np.array([float(value) for value in matrix.split()]).reshape(3, 3).T
    except (KeyError, ValueError) as error:
        raise ValueError(f"header field {error}") from error
    inverse = np.linalg.inv(direction * spacing)

    def to_index(world: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return inverse @ (world - origin)

    return shape, to_index
