"""Any scan-labelled CT dataset: a table of scan path, label, patient id and split."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, ClassVar

from monai.data.meta_tensor import MetaTensor
from typing_extensions import override

from eva_coralbay.data import profile as profiles
from eva_coralbay.data import readers
from eva_coralbay.data.adapters import validation
from eva_coralbay.data.adapters.base import natural_key
from eva_coralbay.data.adapters.scan_level import ScanClassificationAdapter
from eva_coralbay.data.adapters.validation import Problem

COLUMNS = ("path", "label", "patient_id", "split")
"""The table's required columns (others are ignored). `path` is also `find_scans`' manifest
column, so the same table lists the scans for `coralbay embed`."""

TABLE_NAMES = ("scans.csv", "scans.parquet")
"""The table looked for when `root` is a folder, in this order."""


@dataclasses.dataclass(frozen=True)
class TableScan:
    """One row of the table: a scan, its class, patient and split."""

    case_id: str
    """The scan's path relative to the table's folder (absolute when outside it)."""
    split: str
    patient_id: str
    target: int
    """The index of the row's label in the classes."""
    image: Path
    """The scan file or DICOM series folder."""
    listed_in: str
    """`table:LINE`, for messages."""

    def source_files(self) -> list[Path]:
        """The scan's file, or a series folder's visible files."""
        if self.image.is_dir():
            return sorted(
                path
                for path in self.image.iterdir()
                if path.is_file() and not path.name.startswith(".")
            )
        return [self.image]


@dataclasses.dataclass(frozen=True)
class _Row:
    where: str
    values: dict[str, str]


class ScanTable(ScanClassificationAdapter[TableScan]):
    """Your own scan-level CT classification dataset, listed in a CSV or parquet table.

    One row per scan, with the columns `path` (a NIfTI / MetaImage / NRRD file or a DICOM
    series folder, relative to the table's folder or absolute), `label` (the class name),
    `patient_id` and `split` (`train` or `val`). Every scan is read by the data readers, in
    Hounsfield units with its own geometry, then standardised by the model's profile; the
    probe trains on `train` and reports `val`.

    The classes are the declared `classes` in that order (a leaderboard task's `classes`),
    else the table's labels in natural order. Nothing is guessed: an unknown split, a label
    that is not a declared class, a patient in two splits, a scan listed twice, an empty
    field, a missing column and a missing or unreadable scan are all reported by `validate`,
    each naming the table and line (or the scan).
    """

    task_id: ClassVar[str] = "scan_table"
    """The default task id; the config's `TASK_ID` names a leaderboard task instead."""
    title: ClassVar[str] = "A scan-labelled CT dataset listed in a table"
    manual_download: ClassVar[str] = """
List your scans in a table ROOT/scans.csv (or .parquet, or any table given as ROOT) with the
columns path, label, patient_id and split (train or val); paths are relative to the table's
folder or absolute, each a NIfTI / MetaImage / NRRD file or a DICOM series folder.
"""

    def __init__(
        self,
        root: str,
        split: str | None = None,
        profile: str | profiles.PreprocessingProfile | dict[str, Any] = "radiology/coralbay",
        transforms: Callable | None = None,
        cache: str | None = None,
        use_cache: bool = True,
        allow_incomplete: bool = False,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: The table (.csv or .parquet), or the folder holding `scans.csv` or
                `scans.parquet`.
            split: "train", "val" or None for both.
            profile: The model's preprocessing (a registry name, a profile or its mapping).
            transforms: Transforms applied to `(volume, target)`.
            cache: The `coralbay preprocess` cache folder; None: `$CORALBAY_CACHE` or the
                default.
            use_cache: Whether to read standardised volumes from the cache when fresh.
            allow_incomplete: Leave out rows whose scan is missing instead of reporting them.
            classes: The class names in target order; a label that is none of them is an
                error. None: the table's labels, naturally sorted.
            num_classes: The number of classes the config expects (the probe's outputs);
                another number of classes is an error. None: no check.

        Raises:
            ValueError: For an unknown split, repeated or too few declared classes, or
                declared classes whose number is not `num_classes`.
        """
        super().__init__(
            root=root,
            split=split,
            profile=profile,
            transforms=transforms,
            cache=cache,
            use_cache=use_cache,
            allow_incomplete=allow_incomplete,
        )
        declared = None if classes is None else tuple(str(name) for name in classes)
        if declared is not None:
            if len(set(declared)) != len(declared) or len(declared) < 2:
                raise ValueError(
                    f"ScanTable: classes must be at least two distinct names, got {list(declared)}"
                )
            if num_classes is not None and num_classes != len(declared):
                raise ValueError(
                    f"ScanTable: {len(declared)} classes {list(declared)} declared, but "
                    f"num_classes={num_classes}"
                )
        self._declared_classes = declared
        self._num_classes = num_classes
        self._rows: list[_Row] | None = None
        self._read_problems: list[Problem] = []
        self._catalogue_problems: list[Problem] = []

    # ----------------------------------------------------------------------------------------
    # The table.

    @property
    def table(self) -> Path:
        """The table read: `root` itself, or the first of `TABLE_NAMES` in it."""
        if not self._root.is_dir():
            return self._root
        for name in TABLE_NAMES:
            if (self._root / name).is_file():
                return self._root / name
        return self._root / TABLE_NAMES[0]

    @property
    @override
    def classes(self) -> list[str]:
        if self._declared_classes is not None:
            return list(self._declared_classes)
        labels = {row.values.get("label", "") for row in self._read_rows()} - {""}
        return sorted(labels, key=natural_key)

    @override
    def catalogue(self) -> list[TableScan]:
        """The table's well-formed rows; what is wrong with the others `problems` reports.

        Every row is checked against the whole table (a patient in two splits is found
        whatever the selected split), so the problems are the same for every split.
        """
        rows = self._read_rows()
        problems = list(self._read_problems)
        classes = self.classes
        if rows and len(classes) < 2:
            problems.append(
                Problem(str(self.table), f"holds {len(classes)} label(s) {classes}: need two")
            )
        if rows and self._num_classes is not None and len(classes) != self._num_classes:
            problems.append(
                Problem(
                    str(self.table),
                    f"holds {len(classes)} classes {classes}, but the config expects "
                    f"num_classes={self._num_classes}",
                )
            )
        scans: list[TableScan] = []
        first_split: dict[str, tuple[str, str]] = {}  # patient -> (split, table:line)
        first_listing: dict[Path, str] = {}
        for row in rows:
            values = row.values
            empty = [name for name in COLUMNS if not values.get(name)]
            if empty:
                problems.append(Problem(row.where, f"empty {', '.join(empty)}"))
                continue
            scan_problems = []
            if values["split"] not in self.split_names:
                scan_problems.append(
                    f"unknown split {values['split']!r}; use one of {list(self.split_names)}"
                )
            if values["label"] not in classes:
                scan_problems.append(f"label {values['label']!r} is not one of {classes}")
            image = self._scan_path(values["path"])
            if image in first_listing:
                scan_problems.append(
                    f"scan {values['path']} is listed twice, also at {first_listing[image]}"
                )
            patient = values["patient_id"]
            seen_split, seen_where = first_split.setdefault(patient, (values["split"], row.where))
            if seen_split != values["split"]:
                scan_problems.append(
                    f"patient {patient} is in the {values['split']} split here and in the "
                    f"{seen_split} split at {seen_where}: no patient may be in two splits"
                )
            problems += [Problem(row.where, message) for message in scan_problems]
            if scan_problems:
                continue
            first_listing[image] = row.where
            scans.append(
                TableScan(
                    case_id=self._case_id(image),
                    split=values["split"],
                    patient_id=patient,
                    target=classes.index(values["label"]),
                    image=image,
                    listed_in=row.where,
                )
            )
        self._catalogue_problems = problems
        return scans

    @override
    def problems(self) -> list[Problem]:
        """The table's problems, then every missing or unreadable scan of the selected split.

        Scans the cache holds fresh copies of were checked when they were cached and are
        skipped.
        """
        problems = list(self._catalogue_problems)
        unchecked = []
        for scan in self._scans:
            if not scan.image.exists():
                if not self._allow_incomplete:
                    problems.append(
                        Problem(str(scan.image), f"missing scan (listed in {scan.listed_in})")
                    )
            elif not self.is_cached(scan):
                unchecked.append(scan)
        workers = min(4, os.cpu_count() or 1)
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:
            # Headers and DICOM files decompress outside the GIL: a few scans at a time.
            for found in pool.map(_scan_problems, unchecked):
                problems += found
        return problems

    @override
    def read_scan(self, scan: TableScan) -> MetaTensor:
        """The scan as the data readers read it: `[1, X, Y, Z]` HU with its affine.

        Raises:
            ScanReadError: Naming the scan, when it cannot be read.
        """
        return readers.read_scan(scan.image)

    @override
    def filename(self, index: int) -> str:
        # The case id, made relative when the scan lies outside the table's folder, so eva's
        # embeddings writer keeps every file under its output folder.
        case_id = Path(self._scans[index].case_id)
        relative = case_id.relative_to(case_id.anchor) if case_id.is_absolute() else case_id
        return relative.as_posix()

    @override
    def obtain_instructions(self) -> str:
        return f"No scan table was found at {self._root}.\n{self.manual_download.strip()}"

    # ----------------------------------------------------------------------------------------
    # Internals.

    def _scan_path(self, written: str) -> Path:
        path = Path(written).expanduser()
        return path if path.is_absolute() else self.table.parent / path

    def _case_id(self, image: Path) -> str:
        try:
            return image.relative_to(self.table.parent).as_posix()
        except ValueError:
            return image.as_posix()

    def _read_rows(self) -> list[_Row]:
        """The table's rows as text (read once); what stops reading goes to the problems."""
        if self._rows is not None:
            return self._rows
        table = self.table
        self._rows, self._read_problems = [], []
        if not table.is_file():
            self._read_problems = [
                Problem(
                    str(self._root),
                    "no scan table: give a .csv or .parquet table, or a folder holding "
                    f"{' or '.join(TABLE_NAMES)}",
                )
            ]
            return self._rows
        try:
            columns, rows = (
                _read_parquet(table) if table.suffix.lower() == ".parquet" else _read_csv(table)
            )
        except (OSError, ValueError) as error:
            self._read_problems = [Problem(str(table), f"cannot read the table ({error})")]
            return self._rows
        missing = [name for name in COLUMNS if name not in columns]
        if missing:
            self._read_problems = [
                Problem(
                    f"{table}:1",
                    f"missing column(s) {missing}; the table needs {list(COLUMNS)}, it has "
                    f"{columns}",
                )
            ]
        elif not rows:
            self._read_problems = [Problem(str(table), "lists no scans")]
        else:
            self._rows = rows
        return self._rows


def _read_csv(path: Path) -> tuple[list[str], list[_Row]]:
    """A CSV's columns and rows, each row named `table:LINE` (the header is line 1)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        rows = []
        start = 2
        for record in reader:
            values = {
                str(key).strip(): (value or "").strip()
                for key, value in record.items()
                if key is not None and isinstance(value, str | None)
            }
            rows.append(_Row(f"{path}:{start}", values))
            start = reader.line_num + 1  # a quoted field may span lines
        return columns, rows


def _read_parquet(path: Path) -> tuple[list[str], list[_Row]]:
    """A parquet table's columns and rows, each row named `table:row N` (from 1)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises its own types for a broken file
        raise ValueError(str(error)) from error
    rows = []
    for index, record in enumerate(frame.to_dict("records"), start=1):
        values = {str(key).strip(): _text(value) for key, value in record.items()}
        rows.append(_Row(f"{path}:row {index}", values))
    return [str(name).strip() for name in frame.columns], rows


def _text(value: object) -> str:
    """A parquet cell as the CSV would hold it: integral numbers without `.0`, nulls empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _scan_problems(scan: TableScan) -> list[Problem]:
    """A scan no reader takes: a NIfTI header is read; other formats are read whole."""
    try:
        if readers.scan_format(scan.image) == "nifti":
            return validation.check_case(scan.image, [], num_classes=1)
        readers.read_scan(scan.image)
    except readers.ScanReadError as error:
        return [Problem(error.path, f"{error.problem} (listed in {scan.listed_in})")]
    return []
