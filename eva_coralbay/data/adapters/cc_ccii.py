"""CC-CCII: is a chest CT scan novel coronavirus pneumonia, common pneumonia or normal?"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from monai.data.meta_tensor import MetaTensor
from typing_extensions import override

from eva_coralbay import tasks
from eva_coralbay.data import profile as profiles
from eva_coralbay.data import readers
from eva_coralbay.data.adapters.scan_level import ScanClassificationAdapter
from eva_coralbay.data.adapters.validation import DatasetValidationError, Problem

Layout = Literal["auto", "slices", "npy"]

NPY_DIR = Path("CC-CCII_public") / "data"
"""Where eva's `CC_CCII` and VoCo read the preprocessed volumes, `p<patient>-s<scan>.npy`."""

FOLD_TABLE = "CC_CCII_fold{fold}_{part}.csv"
"""VoCo's fold tables (`part` train / valid), which eva's `CC_CCII` reads for fold 0."""

RELEASE_TABLE = "unzip_filenames.csv"
"""The public release's list of scans with their slice counts (optional)."""

SLICE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""The release's slice image formats."""

FIELD_OF_VIEW_MM = 350.0
"""Assumed width of a slice image in mm: a typical adult chest CT reconstruction field of view
(512 pixels -> 0.68 mm). Slice images and the .npy volumes carry no spacing."""

SCAN_LENGTH_MM = 300.0
"""Assumed head-to-foot extent of a scan's slice stack in mm (lung apices to bases with margin).
The release's scans hold 16 to 690 slices (VoCo's fold tables), so a fixed slice spacing would
make some scans metres long and others a centimetre: a fixed extent keeps every scan a chest."""

VAL_FRACTION = 3
"""Without fold tables, one patient in three (by a hash of the id) validates: the share of a
validation fold of VoCo's three-fold split."""

_NUMBER = re.compile(r"\d+")

_GREY_MODES = ("L", "RGB", "RGBA", "P", "LA")
"""PIL modes of 8-bit slice images; anything else (16-bit, float) has no known grey scale."""


@dataclasses.dataclass(frozen=True)
class Scan:
    """One CT scan of the benchmark: its class, patient, split and where its voxels are."""

    case_id: str
    """`<class>/<patient>/<scan>`, unique in the release."""
    split: str
    patient_id: str
    scan_id: str
    target: int
    """The class index: 0 Normal, 1 CP, 2 NCP (the fold tables' `target`)."""
    image: Path
    """The scan's slice-image folder, or its .npy volume."""
    listed_in: str
    """Where the scan was found: `table.csv:LINE` or the folder (for messages)."""
    slices: int | None = None
    """The slice count the release table lists, if it lists the scan."""

    def source_files(self) -> list[Path]:
        """The files the standardised volume is computed from (a folder: its slice images)."""
        if self.image.is_dir():
            return sorted(path for path in self.image.iterdir() if path.is_file())
        return [self.image]


class CC_CCII(ScanClassificationAdapter[Scan]):
    """CC-CCII chest CT: novel coronavirus pneumonia (NCP), common pneumonia (CP) or normal.

    One sample per scan: the whole scan, standardised by the model's profile, and its class (0
    normal, 1 common pneumonia, 2 novel coronavirus pneumonia, the fold tables' `target`). Two
    layouts under `root` are read:

    - `slices`, the public release: `{NCP,CP,Normal}/<patient>/<scan>/<n>.png|jpg`, one 8-bit
      axial slice per file, ordered by the number in the file name; `unzip_filenames.csv`
      beside them (optional) lists every scan with its slice count.
    - `npy`, the layout eva's `CC_CCII` and VoCo read: `CC-CCII_public/data/p<patient>-s<scan>.npy`,
      uint8 `[slice, row, column]`.

    The split is VoCo's fold table `CC_CCII_fold<fold>_{train,valid}.csv` in `root` (needed
    for `npy`; eva's numbers use fold 0); without it (`slices` only) a patient's split is a
    hash of the id, one in three to validation. A patient in both tables is refused.

    Neither layout records a geometry or Hounsfield units. The scan is read as RAS voxel axes
    (columns toward the patient's left, rows posterior, slices downward from the first) with
    `field_of_view_mm` across a slice and `scan_length_mm` over the stack, and the grey levels
    0..255 are put on the profile's HU window, so the profile maps them linearly onto its
    output range; orientation and spacing then go through the profile like any scan's.
    """

    task_id: ClassVar[str] = "cc-ccii"
    native_classes: ClassVar[tuple[str, ...]] = tasks.get_benchmark("cc-ccii").native_classes
    """The release's class folders by target: Normal, CP, NCP."""
    manual_download: ClassVar[str] = """
Either (a) the public release: download the CP, NCP (COVID19-*.zip) and Normal zip files and
unzip_filenames.csv from http://ncov-ai.big.ac.cn/download and unzip every archive into ROOT, so
that ROOT/NCP/<patient>/<scan>/ holds a scan's slice images; or (b) eva's and VoCo's .npy
layout: with a Hugging Face token that has accepted the dataset's terms,
  huggingface-cli download Luffy503/VoCo_Downstream CC-CCII_public.zip --repo-type dataset \
    --local-dir ROOT
  cd ROOT && unzip CC-CCII_public.zip   # gives ROOT/CC-CCII_public/data/p<patient>-s<scan>.npy
For (b), and for eva's split with (a), put VoCo's fold tables CC_CCII_fold0_train.csv and
CC_CCII_fold0_valid.csv (github.com/Luffy03/Large-Scale-Medical, Downstream/monai/CC-CCII/csv/)
into ROOT.
"""

    def __init__(
        self,
        root: str,
        split: str | None = None,
        profile: str | profiles.PreprocessingProfile | dict[str, Any] = "radiology/coralbay",
        transforms: Callable | None = None,
        cache: str | None = None,
        use_cache: bool = True,
        layout: Layout = "auto",
        fold: int = 0,
        field_of_view_mm: float = FIELD_OF_VIEW_MM,
        scan_length_mm: float = SCAN_LENGTH_MM,
        allow_incomplete: bool = False,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: The folder holding the release (either layout) and the fold tables.
            split: "train", "val" or None for both.
            profile: The model's preprocessing (a registry name, a profile or its mapping).
            transforms: Transforms applied to `(volume, target)`.
            cache: The `coralbay preprocess` cache folder; None: `$CORALBAY_CACHE` or the
                default.
            use_cache: Whether to read standardised volumes from the cache when fresh.
            layout: "slices", "npy", or "auto" (npy when `CC-CCII_public/data` exists).
            fold: Which of VoCo's three folds is the split (eva's numbers: 0).
            field_of_view_mm: The assumed width of a slice in mm.
            scan_length_mm: The assumed head-to-foot extent of a scan in mm.
            allow_incomplete: Use the listed scans that are present; others are left out.
        """
        if layout not in ("auto", "slices", "npy"):
            raise ValueError(f"CC_CCII: layout must be 'auto', 'slices' or 'npy', got {layout!r}")
        if fold not in (0, 1, 2):
            raise ValueError(f"CC_CCII: fold must be 0, 1 or 2, got {fold!r}")
        if min(field_of_view_mm, scan_length_mm) <= 0:
            raise ValueError("CC_CCII: field_of_view_mm and scan_length_mm must be positive")
        super().__init__(
            root=root,
            split=split,
            profile=profile,
            transforms=transforms,
            cache=cache,
            use_cache=use_cache,
            allow_incomplete=allow_incomplete,
        )
        self._layout: Layout = layout
        self._fold = fold
        self._field_of_view_mm = float(field_of_view_mm)
        self._scan_length_mm = float(scan_length_mm)

    # ----------------------------------------------------------------------------------------
    # The release's facts.

    @property
    @override
    def classes(self) -> list[str]:
        return list(tasks.get_benchmark(self.task_id).classes)

    @property
    def layout(self) -> Literal["slices", "npy"]:
        """The layout read: the one given, else `npy` when its folder exists, else `slices`."""
        if self._layout != "auto":
            return self._layout
        return "npy" if (self._root / NPY_DIR).is_dir() else "slices"

    def fold_tables(self) -> tuple[Path, Path]:
        """The train and validation tables of the fold."""
        return (
            self._root / FOLD_TABLE.format(fold=self._fold, part="train"),
            self._root / FOLD_TABLE.format(fold=self._fold, part="valid"),
        )

    # ----------------------------------------------------------------------------------------
    # The scans and their splits.

    @override
    def catalogue(self) -> list[Scan]:
        """Every scan of both splits, with the paths it should have.

        Raises:
            DatasetValidationError: When the fold tables contradict themselves (a patient in
                both, a scan twice, a target outside 0..2 or disagreeing with its label); each
                problem names the table and line.
        """
        train_table, valid_table = self.fold_tables()
        if train_table.is_file() and valid_table.is_file():
            return self._scans_of_fold_tables(train_table, valid_table)
        if self.layout == "npy":
            return []  # `problems` names the missing tables
        return self._scans_of_release()

    def _scans_of_fold_tables(self, train_table: Path, valid_table: Path) -> list[Scan]:
        problems: list[Problem] = []
        scans: list[Scan] = []
        first_seen: dict[str, tuple[str, str]] = {}  # patient -> (split, table:line)
        scan_seen: dict[str, str] = {}
        for split, table in (("train", train_table), ("val", valid_table)):
            for line, row in _read_table(table, ("patient_id", "scan_id", "target")):
                where = f"{table}:{line}"
                patient, scan_id = row["patient_id"].strip(), row["scan_id"].strip()
                target = _target(row, self.native_classes)
                if isinstance(target, str):
                    problems.append(Problem(where, target))
                    continue
                seen = first_seen.setdefault(patient, (split, where))
                if seen[0] != split:
                    problems.append(
                        Problem(
                            where,
                            f"patient {patient} is in the {split} split and in the {seen[0]} "
                            f"split ({seen[1]}): no patient may be in two splits",
                        )
                    )
                    continue
                if scan_id in scan_seen:
                    problems.append(
                        Problem(where, f"scan {scan_id} is listed twice, also {scan_seen[scan_id]}")
                    )
                    continue
                scan_seen[scan_id] = where
                scans.append(self._scan(patient, scan_id, target, split, where))
        if problems:
            raise DatasetValidationError(f"CC_CCII fold tables in {self._root}", problems)
        return scans

    def _scans_of_release(self) -> list[Scan]:
        """The release's scans: those its table lists, else the folders found; hash split."""
        table = self._root / RELEASE_TABLE
        scans: list[Scan] = []
        if table.is_file():
            problems = []
            for line, row in _read_table(table, ("label", "patient_id", "scan_id", "n_slice")):
                label = row["label"].strip()
                where = f"{table}:{line}"
                if label not in self.native_classes:
                    problems.append(
                        Problem(where, f"label {label!r} is not one of {self.native_classes}")
                    )
                    continue
                patient, scan_id = row["patient_id"].strip(), row["scan_id"].strip()
                scan = self._scan(
                    patient, scan_id, self.native_classes.index(label), _hash_split(patient), where
                )
                scans.append(dataclasses.replace(scan, slices=int(float(row["n_slice"]))))
            if problems:
                raise DatasetValidationError(f"CC_CCII release table {table}", problems)
            return scans
        for target, label in enumerate(self.native_classes):
            for patient_dir in _sorted_dirs(self._root / label):
                for scan_dir in _sorted_dirs(patient_dir):
                    scans.append(
                        self._scan(
                            patient_dir.name,
                            scan_dir.name,
                            target,
                            _hash_split(patient_dir.name),
                            str(scan_dir),
                        )
                    )
        return scans

    def _scan(self, patient: str, scan_id: str, target: int, split: str, where: str) -> Scan:
        label = self.native_classes[target]
        image = (
            self._root / NPY_DIR / f"p{patient}-s{scan_id}.npy"
            if self.layout == "npy"
            else self._root / label / patient / scan_id
        )
        return Scan(f"{label}/{patient}/{scan_id}", split, patient, scan_id, target, image, where)

    # ----------------------------------------------------------------------------------------
    # Validation.

    @override
    def problems(self) -> list[Problem]:
        """Missing tables and scans (the list of what is missing), then every broken scan.

        Scans the cache holds fresh copies of were checked when they were cached and are
        skipped.
        """
        problems = self._release_problems()
        for scan in self._scans:
            if not scan.image.exists():
                if not self._allow_incomplete:
                    problems.append(
                        Problem(str(scan.image), f"missing (listed in {scan.listed_in})")
                    )
                continue
            if self.is_cached(scan):
                continue
            if self.layout == "npy":
                problems += _npy_problems(scan.image)
            else:
                problems += _slice_folder_problems(scan)
        return problems

    def _release_problems(self) -> list[Problem]:
        train_table, valid_table = self.fold_tables()
        tables = [path for path in (train_table, valid_table) if not path.is_file()]
        if self.layout == "npy":
            problems = [
                Problem(str(path), "missing: the fold table that splits the .npy volumes")
                for path in tables
            ]
            if not (self._root / NPY_DIR).is_dir():
                problems.append(Problem(str(self._root / NPY_DIR), "missing folder"))
            return problems
        if len(tables) == 1:
            return [Problem(str(tables[0]), "missing: the other fold table is there")]
        if not self._scans and not self._allow_incomplete:
            expected = [str(self._root / label) for label in self.native_classes]
            return [
                Problem(
                    str(self._root),
                    f"no CC-CCII scans found: expected the release's class folders {expected} "
                    f"or {self._root / NPY_DIR}",
                )
            ]
        return []

    # ----------------------------------------------------------------------------------------
    # Reading.

    @override
    def read_scan(self, scan: Scan) -> MetaTensor:
        """The scan as read, `[1, X, Y, Z]` on its assumed grid, grey levels on the HU window.

        Voxel axes: X the slice columns (toward the patient's left), Y the rows (posterior), Z
        the slices in order (downward): the usual axial display, with the first slice at the
        top of the chest (acquisition order of a craniocaudal chest scan, *assumed*).

        Raises:
            ValueError: When the slices cannot be read or do not stack (message names the file).
        """
        grey = _read_npy(scan.image) if scan.image.suffix == ".npy" else _read_slices(scan.image)
        slices, _, columns = grey.shape
        in_plane = self._field_of_view_mm / columns
        # RAS world: +x is the patient's right, +y anterior, +z superior.
        affine = np.diag([-in_plane, -in_plane, -self._scan_length_mm / slices, 1.0])
        low, high = self._profile.intensity_range
        hu = low + grey.transpose(2, 1, 0).astype(np.float32) * np.float32((high - low) / 255.0)
        return readers.to_meta_tensor(hu, affine, scan.image)

    # ----------------------------------------------------------------------------------------
    # Descriptions.

    @override
    def obtain_instructions(self) -> str:
        """How to obtain the data by hand (no checksummed public archive is known)."""
        record = tasks.get_benchmark(self.task_id)
        return "\n".join(
            [
                f"{record.title} was not found at {self._root}.",
                f"Licence: {record.license}.",
                self.manual_download.strip(),
            ]
        )


def _read_table(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """A CSV's rows with their line numbers (header = line 1).

    Raises:
        DatasetValidationError: When a required column is missing.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise DatasetValidationError(
                f"CC_CCII table {path}", [Problem(str(path), f"missing column(s) {missing}")]
            )
        return list(enumerate(reader, start=2))


def _target(row: dict[str, str], classes: tuple[str, ...]) -> int | str:
    """A fold-table row's target, or what is wrong with it."""
    try:
        target = int(float(row["target"]))
    except ValueError:
        return f"target {row['target']!r} is not a number"
    if not 0 <= target < len(classes):
        return f"target {target} is outside 0..{len(classes) - 1}"
    label = (row.get("label") or "").strip()
    if label and label != classes[target]:
        return f"target {target} is {classes[target]}, but the row's label is {label!r}"
    return target


def _hash_split(patient_id: str) -> str:
    """A patient's split without fold tables: fixed, the same on every machine."""
    digest = hashlib.sha256(f"cc-ccii:{patient_id}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") % VAL_FRACTION == 0 else "train"


def _sorted_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        (item for item in folder.iterdir() if item.is_dir() and not item.name.startswith(".")),
        key=lambda item: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", item.name)],
    )


def slice_number(path: Path) -> int | None:
    """The slice number of a slice image: the last number in its name (None: no number)."""
    numbers = _NUMBER.findall(path.stem)
    return int(numbers[-1]) if numbers else None


def slice_files(folder: Path) -> list[Path]:
    """A scan folder's slice images, in slice-number order (unnumbered ones last, by name)."""
    images = [
        path
        for path in folder.iterdir()
        if path.suffix.lower() in SLICE_SUFFIXES and not path.name.startswith(".")
    ]
    return sorted(images, key=lambda path: (slice_number(path) is None, slice_number(path) or 0))


def _slice_folder_problems(scan: Scan) -> list[Problem]:
    """Unnumbered, repeated or missing slice numbers, mixed sizes, unreadable or odd images."""
    from PIL import Image

    folder = scan.image
    if not folder.is_dir():
        return [Problem(str(folder), "not a folder of slice images")]
    files = slice_files(folder)
    if not files:
        return [Problem(str(folder), f"holds no slice images ({', '.join(SLICE_SUFFIXES)})")]
    problems = []
    if scan.slices is not None and scan.slices != len(files):
        problems.append(
            Problem(
                str(folder),
                f"holds {len(files)} slice images, {scan.listed_in} lists {scan.slices}: a "
                "partial scan",
            )
        )
    numbered = [(slice_number(path), path) for path in files]
    for number, path in numbered:
        if number is None:
            problems.append(Problem(str(path), "no slice number in the file name"))
    numbers = [(n, path) for n, path in numbered if n is not None]
    for (previous, previous_path), (number, path) in itertools.pairwise(numbers):
        if number == previous:
            problems.append(Problem(str(path), f"slice number {number} again, as {previous_path}"))
        elif number != previous + 1:
            missing = number - previous - 1
            problems.append(
                Problem(
                    str(path),
                    f"slice numbers jump from {previous} ({previous_path.name}) to {number}: "
                    f"{missing} slice(s) missing",
                )
            )
    first_size: tuple[tuple[int, int], Path] | None = None
    for path in files:
        try:
            with Image.open(path) as picture:
                size, mode = picture.size, picture.mode
        except OSError as error:
            problems.append(Problem(str(path), f"unreadable image ({error})"))
            continue
        if mode not in _GREY_MODES:
            problems.append(Problem(str(path), f"pixel mode {mode} is not 8-bit grey or colour"))
        if first_size is None:
            first_size = (size, path)
        elif size != first_size[0]:
            problems.append(
                Problem(
                    str(path),
                    f"is {size[0]}x{size[1]} pixels, the scan's first slice "
                    f"{first_size[1].name} is {first_size[0][0]}x{first_size[0][1]}",
                )
            )
    return problems


def _npy_problems(path: Path) -> list[Problem]:
    """A volume that is not a readable 3D uint8 .npy."""
    try:
        volume = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        return [Problem(str(path), f"unreadable .npy ({error})")]
    if volume.ndim != 3:
        return [Problem(str(path), f"shape {volume.shape} is not [slice, row, column]")]
    if volume.dtype != np.uint8:
        return [Problem(str(path), f"dtype {volume.dtype}, expected uint8 grey levels")]
    return []


def _read_slices(folder: Path) -> npt.NDArray[np.uint8]:
    """A scan folder's slices as `[slice, row, column]` grey levels."""
    from PIL import Image

    files = slice_files(folder)
    if not files:
        raise ValueError(f"{folder}: holds no slice images")
    planes = []
    for path in files:
        with Image.open(path) as picture:
            plane = np.asarray(picture.convert("L"))
        if planes and plane.shape != planes[0].shape:
            raise ValueError(
                f"{path}: {plane.shape[0]}x{plane.shape[1]} pixels, the scan's first slice "
                f"{files[0].name} is {planes[0].shape[0]}x{planes[0].shape[1]}"
            )
        planes.append(plane)
    return np.stack(planes)


def _read_npy(path: Path) -> npt.NDArray[np.uint8]:
    problems = _npy_problems(path)
    if problems:
        raise ValueError(str(problems[0]))
    return np.asarray(np.load(path))
