"""The one home of standardised-volume caching: the preprocess store and the scan-volume cache.

Both keep standardised volumes as memory-mappable .npy files under one key rule (`EntryKey`): a
cached volume is used only while its source files have the recorded size and modification time,
the code that computed it is the present code (`code_version`) and the profile is the same.

The preprocess store of labelled benchmark tasks (`preprocess` writes it, `CacheReader` reads it
for the eva adapters), under the cache root::

    <task_id>/<profile fingerprint>/
        manifest.parquet            one row per case (see `MANIFEST_COLUMNS`)
        profile.json                the profile the arrays were computed with
        cases/<case>-<sha12>.image.npy   float32 [X, Y, Z]
        cases/<case>-<sha12>.label.npy   uint8 / int16 [X, Y, Z] (none for a scan-level task:
                                         its row's label_file is "")

A row is trusted only when its source files still have the recorded size and modification time
(a cheap stat; `coralbay preprocess` falls back to the sha256 when they differ) and both arrays
exist with the recorded shape, and when the code that computed them (readers, profile, the
adapter's classes: `code_version`) is the present code. A new profile gets a new fingerprint
folder, so changing the preprocessing never reuses old arrays, and a fix to a reader or an
adapter recomputes the cases it touches. Every write goes to a temporary name in the same folder,
is fsynced and then renamed into place, and a case enters the manifest only after both of its
arrays are in place: a run interrupted at any point leaves nothing a later run trusts wrongly.

The scan-volume cache of unlabelled scans (`ScanVolumeCache`, used by pretraining) names each
entry after its key instead of keeping a manifest::

    <root>/<scan name>-<key digest>.npy     int16 HU [X, Y, Z], not windowed
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from eva_coralbay import _io
from eva_coralbay.data import readers

if TYPE_CHECKING:
    import pandas as pd

    from eva_coralbay.data.profile import PreprocessingProfile

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
PROFILE_NAME = "profile.json"
CASES_DIR = "cases"
MANIFEST_COLUMNS = (
    "case_id",
    "split",
    "image_file",
    "label_file",
    "shape",
    "spacing",
    "affine",
    "source_files",
    "source_sizes",
    "source_mtimes_ns",
    "source_sha256",
    "label_voxel_counts",
    "profile_fingerprint",
    "code_version",
)
"""The manifest's columns, one row per case."""


def default_cache_dir() -> Path:
    """`$CORALBAY_CACHE` when set, else `~/.cache/coralbay/preprocessed`."""
    configured = os.environ.get("CORALBAY_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "coralbay" / "preprocessed"


def code_version(dataset_type: type | None = None) -> str:
    """A digest of the code that turns a case's files into standardised arrays.

    It covers the readers, the profile and every class of `dataset_type`'s MRO that is this
    package's or the user's own (not an installed third-party package's): the adapter, its
    base classes, a user's subclass; for scan volumes, `ScanVolumeCache` (this module). Any edit
    to those files, a fix to DICOM slice order or to a label map say, gives a new version, and
    cached volumes of another version are recomputed. An edit to a comment does too:
    recomputing is the safe side.
    """
    from eva_coralbay.data import profile as profile_module

    files = {Path(readers.__file__), Path(profile_module.__file__)}
    for cls in dataset_type.__mro__ if dataset_type is not None else ():
        source = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if source is None:
            continue
        own = cls.__module__.split(".")[0] == "eva_coralbay"
        installed = any(part in ("site-packages", "dist-packages") for part in Path(source).parts)
        if own or not installed:
            files.add(Path(source))
    # Read every time (a few small files): a cache keyed by path would miss an edit.
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def store_dir(cache_root: Path, task_id: str, profile: PreprocessingProfile) -> Path:
    """The folder holding one dataset's arrays for one profile."""
    return Path(cache_root) / task_id / profile.fingerprint()


@dataclasses.dataclass(frozen=True)
class SourceStat:
    """What a cheap stat says about a case's source files, in order."""

    files: tuple[str, ...]
    sizes: tuple[int, ...]
    mtimes_ns: tuple[int, ...]

    @classmethod
    def of(cls, paths: Sequence[Path]) -> SourceStat:
        """Stats the files (following symlinks)."""
        stats = [os.stat(path) for path in paths]
        return cls(
            files=tuple(str(Path(path).absolute()) for path in paths),
            sizes=tuple(stat.st_size for stat in stats),
            mtimes_ns=tuple(stat.st_mtime_ns for stat in stats),
        )

    @classmethod
    def from_columns(cls, row: Mapping[str, Any]) -> SourceStat:
        """The stat a manifest row recorded (see `columns`)."""
        return cls(
            files=tuple(str(file) for file in row["source_files"]),
            sizes=tuple(int(size) for size in row["source_sizes"]),
            mtimes_ns=tuple(int(mtime) for mtime in row["source_mtimes_ns"]),
        )

    def columns(self) -> dict[str, list[Any]]:
        """The manifest columns that record the stat."""
        return {
            "source_files": list(self.files),
            "source_sizes": list(self.sizes),
            "source_mtimes_ns": list(self.mtimes_ns),
        }


@dataclasses.dataclass(frozen=True)
class EntryKey:
    """What a cached standardised volume was computed from; it is used only while all is equal.

    The one key rule of both stores: the preprocess store records the parts in its manifest
    rows (and the profile in its folder name too), the scan-volume cache hashes them into the
    entry's file name.
    """

    sources: SourceStat
    """The source files as a stat sees them (a fix of their content changes size or mtime)."""

    code_version: str
    """`code_version` of the code that computed the volume."""

    profile_fingerprint: str
    """`PreprocessingProfile.fingerprint` of the profile applied."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EntryKey:
        """The key a manifest row was written under."""
        return cls(
            SourceStat.from_columns(row),
            str(row["code_version"]),
            str(row["profile_fingerprint"]),
        )

    def digest(self) -> str:
        """16 hex digits that differ whenever the key does, stable across processes."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sources_sha256(paths: Sequence[Path]) -> str:
    """One sha256 over the case's source files: the digest of their digests, in order."""
    outer = hashlib.sha256()
    for path in paths:
        outer.update(bytes.fromhex(_io.sha256_of(path)))
    return outer.hexdigest()


def read_manifest(directory: Path) -> pd.DataFrame | None:
    """The manifest of a store folder, or None when there is none yet."""
    import pandas as pd

    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    return pd.read_parquet(path)


class CacheReader:
    """Reads standardised cases of one dataset and profile, trusting only fresh rows."""

    def __init__(
        self,
        directory: Path,
        rows: dict[str, dict[str, Any]],
        code_version: str,
        profile_fingerprint: str,
    ) -> None:
        """Initializes the reader; use `open`."""
        self._directory = directory
        self._rows = rows
        self._code_version = code_version
        self._profile_fingerprint = profile_fingerprint

    @classmethod
    def open(
        cls,
        cache_root: Path,
        task_id: str,
        profile: PreprocessingProfile,
        dataset_type: type | None = None,
    ) -> CacheReader | None:
        """Opens the store for a dataset and profile; None when nothing was cached.

        Only cases computed by the present code of `dataset_type` (see `code_version`) count.
        """
        directory = store_dir(cache_root, task_id, profile)
        manifest = read_manifest(directory)
        if manifest is None:
            return None
        rows = {str(row["case_id"]): row for row in manifest.to_dict("records")}
        return cls(directory, rows, code_version(dataset_type), profile.fingerprint())

    @property
    def directory(self) -> Path:
        """The store folder."""
        return self._directory

    def is_fresh(self, case_id: str, sources: Sequence[Path]) -> bool:
        """Whether the store holds the case computed from the sources as they are now."""
        row = self._rows.get(case_id)
        if row is None:
            return False
        try:
            key = EntryKey(SourceStat.of(sources), self._code_version, self._profile_fingerprint)
        except OSError:
            return False
        return EntryKey.from_row(row) == key and _arrays_present(self._directory, row)

    def load(
        self, case_id: str, sources: Sequence[Path]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.integer], npt.NDArray[np.float64]] | None:
        """The case's memory-mapped image and label and its affine, or None when not fresh."""
        if not self.is_fresh(case_id, sources):
            return None
        row = self._rows[case_id]
        image = np.load(self._directory / row["image_file"], mmap_mode="r")
        label = np.load(self._directory / row["label_file"], mmap_mode="r")
        shape = tuple(int(n) for n in row["shape"])
        if image.shape != shape or label.shape != shape:
            return None
        affine = np.array(row["affine"], dtype=np.float64).reshape(4, 4)  # a writable copy
        return image, label, affine

    def load_image(
        self, case_id: str, sources: Sequence[Path]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]] | None:
        """A scan-level case's memory-mapped image and its affine, or None when not fresh."""
        if not self.is_fresh(case_id, sources):
            return None
        row = self._rows[case_id]
        image = np.load(self._directory / row["image_file"], mmap_mode="r")
        if image.shape != tuple(int(n) for n in row["shape"]):
            return None
        return image, np.array(row["affine"], dtype=np.float64).reshape(4, 4)


def read_standardised_hu(
    scan: str | os.PathLike[str], profile: PreprocessingProfile
) -> npt.NDArray[np.int16]:
    """Reads a scan and brings it to the profile's orientation and spacing, as int16 HU.

    The profile's HU window is left out (see `PreprocessingProfile.resample`). Rounding to int16
    loses nothing a CT holds (whole HU, -32768 to 32767) and halves float32's memory.

    Args:
        scan: A scan file or a DICOM series folder.
        profile: The orientation and spacing to bring it to.

    Returns:
        The volume, `[X, Y, Z]`.

    Raises:
        ScanReadError: When the scan cannot be read; the message names it.
    """
    volume = np.asarray(profile.resample(readers.read_scan(scan))[0])
    limits = np.iinfo(np.int16)
    return np.clip(np.rint(volume), limits.min, limits.max).astype(np.int16)


class ScanVolumeCache:
    """The standardised volumes of unlabelled scans, each computed once and memory-mapped after.

    An entry holds `read_standardised_hu` of one scan and is named after its `EntryKey`: the
    stats of the scan's files (every entry of a DICOM folder), the code version of the readers,
    the profile and this module (which decides what an entry stores), and the profile's
    fingerprint. A changed scan, a code fix or another profile therefore finds no entry and
    computes a new one. Entries of other keys stay where they are (another profile or checkout
    may still use them); deleting the folder reclaims them. Writes are atomic, so processes
    sharing the folder (DDP ranks, say) at worst compute an entry twice.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Initializes the cache over a folder (created on the first write).

        The code version is taken here, once: it is that of the code this process runs.
        """
        self.root = Path(root)
        self._code_version = code_version(type(self))

    def key(self, scan: str | os.PathLike[str], profile: PreprocessingProfile) -> EntryKey:
        """The key of a scan's entry, for its files as they are now.

        Raises:
            ScanReadError: When the scan's files cannot be listed or stat-ed.
        """
        path = Path(scan).resolve()
        try:
            files = sorted(path.iterdir()) if path.is_dir() else [path]
            sources = SourceStat.of(files)
        except OSError as error:
            raise readers.ScanReadError(scan, f"cannot be read ({error})") from error
        return EntryKey(sources, self._code_version, profile.fingerprint())

    def entry_path(self, scan: str | os.PathLike[str], profile: PreprocessingProfile) -> Path:
        """The file that holds (or will hold) the scan's entry under its present key."""
        stem = _safe_name(Path(scan).name.split(".")[0]) or "scan"
        return self.root / f"{stem}-{self.key(scan, profile).digest()}.npy"

    def volume(
        self, scan: str | os.PathLike[str], profile: PreprocessingProfile
    ) -> npt.NDArray[np.int16]:
        """The scan's standardised volume, memory-mapped from its entry (computed when missing).

        An entry that does not load as a 3D int16 array (a truncated or foreign file) is
        computed again, with a warning.

        Args:
            scan: A scan file or a DICOM series folder.
            profile: The orientation and spacing of the volume.

        Returns:
            The read-only memory map of `read_standardised_hu(scan, profile)`.

        Raises:
            ScanReadError: When the scan cannot be read; the message names it.
        """
        path = self.entry_path(scan, profile)
        if path.is_file():
            stored = _load_volume(path)
            if stored is not None:
                return stored
            logger.warning("rebuilding the unreadable cache entry %s of %s", path, scan)
        volume = read_standardised_hu(scan, profile)
        _io.atomic_write(path, lambda handle: np.save(handle, volume))
        return np.load(path, mmap_mode="r")


def _load_volume(path: Path) -> npt.NDArray[np.int16] | None:
    """A scan entry's memory map, or None when the file is not one."""
    try:
        volume = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        return None
    # Any well-formed .npy loads; only the form every entry has (3D int16) is trusted.
    if volume.dtype != np.int16 or volume.ndim != 3:
        return None
    return volume


class PreprocessableDataset(Protocol):
    """What `preprocess` needs from an adapter (every `SegmentationAdapter` has it)."""

    task_id: ClassVar[str]
    native_classes: ClassVar[tuple[str, ...]]

    @property
    def profile(self) -> PreprocessingProfile | None:
        """The profile to apply."""
        ...

    @property
    def cases(self) -> list[Any]:
        """The cases, each with `case_id`, `split` and `source_files()`."""
        ...

    def standardise(self, case: Any) -> Any:
        """Reads and standardises one case (`image`, `label`, `affine` arrays).

        `label` is None for a scan-level task, whose target is not a voxel map.
        """
        ...


@dataclasses.dataclass
class PreprocessReport:
    """What one `preprocess` run did."""

    directory: Path
    written: list[str] = dataclasses.field(default_factory=list)
    reused: list[str] = dataclasses.field(default_factory=list)
    rehashed: list[str] = dataclasses.field(default_factory=list)
    removed_files: list[str] = dataclasses.field(default_factory=list)


def preprocess(
    dataset: PreprocessableDataset,
    cache_root: Path,
    on_case: Callable[[str, str], None] | None = None,
) -> PreprocessReport:
    """Standardises every case of a configured dataset once and stores it.

    Cases whose sources are unchanged are skipped (stat first; sha256 when the stat differs);
    changed or new ones are recomputed. The manifest is rewritten atomically after each case, so
    the work done survives an interruption.

    Args:
        dataset: A configured (and validated) adapter with a profile.
        cache_root: The cache root folder.
        on_case: Called with (case id, "written" / "reused" / "rehashed") after each case.

    Returns:
        The report of the run.

    Raises:
        ValueError: When the dataset has no profile (raw volumes are not cached).
    """
    import pandas as pd

    profile = dataset.profile
    if profile is None:
        raise ValueError("only standardised volumes are cached: the dataset needs a profile")
    directory = store_dir(cache_root, dataset.task_id, profile)
    (directory / CASES_DIR).mkdir(parents=True, exist_ok=True)
    report = PreprocessReport(directory)
    version = code_version(type(dataset))
    with _locked(directory):
        _io.atomic_write(
            directory / PROFILE_NAME,
            lambda handle: handle.write(
                json.dumps(
                    {"fingerprint": profile.fingerprint(), **profile.to_dict()}, indent=2
                ).encode()
            ),
        )
        manifest = read_manifest(directory)
        rows: dict[str, dict[str, Any]] = (
            {} if manifest is None else {str(r["case_id"]): r for r in manifest.to_dict("records")}
        )
        for case in dataset.cases:
            sources = case.source_files()
            key = EntryKey(SourceStat.of(sources), version, profile.fingerprint())
            row = rows.get(case.case_id)
            outcome = "written"
            if row is not None and _arrays_present(directory, row):
                stored = EntryKey.from_row(row)
                same_code_and_profile = dataclasses.replace(stored, sources=key.sources) == key
                if stored == key:
                    outcome = "reused"
                # A copy or a touch changes only the stat: the same bytes keep their arrays.
                elif same_code_and_profile and row["source_sha256"] == sources_sha256(sources):
                    outcome = "rehashed"
            if outcome == "written":
                rows[case.case_id] = _write_case(
                    directory, dataset, case, key, sources_sha256(sources)
                )
            elif outcome == "rehashed" or row["split"] != case.split:  # type: ignore[index]
                rows[case.case_id] = {**row, **key.sources.columns(), "split": case.split}  # type: ignore[dict-item]
            getattr(report, outcome).append(case.case_id)
            if outcome != "reused":
                _write_manifest(
                    directory, pd.DataFrame(list(rows.values()), columns=MANIFEST_COLUMNS)
                )
            if on_case is not None:
                on_case(case.case_id, outcome)
        if manifest is None and not rows:
            _write_manifest(directory, pd.DataFrame([], columns=MANIFEST_COLUMNS))
        report.removed_files = _remove_unreferenced(directory, rows.values())
    return report


def _write_case(
    directory: Path,
    dataset: PreprocessableDataset,
    case: Any,
    key: EntryKey,
    sha256: str,
) -> dict[str, Any]:
    standard = dataset.standardise(case)
    stem = f"{CASES_DIR}/{_safe_name(case.case_id)}-{sha256[:12]}"
    image_file = f"{stem}.image.npy"
    image = np.ascontiguousarray(standard.image, dtype=np.float32)
    _io.atomic_write(directory / image_file, lambda handle: np.save(handle, image))
    label_file, counts = "", np.zeros(0, dtype=np.int64)
    if standard.label is not None:
        label_file = f"{stem}.label.npy"
        label = np.ascontiguousarray(standard.label)
        _io.atomic_write(directory / label_file, lambda handle: np.save(handle, label))
        counts = np.bincount(label.ravel().astype(np.int64), minlength=len(dataset.native_classes))
    affine = np.asarray(standard.affine, dtype=np.float64)
    return {
        "case_id": case.case_id,
        "split": case.split,
        "image_file": image_file,
        "label_file": label_file,
        "shape": [int(n) for n in image.shape],
        "spacing": [float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)],
        "affine": [float(v) for v in affine.ravel()],
        **key.sources.columns(),
        "source_sha256": sha256,
        "label_voxel_counts": [int(n) for n in counts],
        "profile_fingerprint": key.profile_fingerprint,
        "code_version": key.code_version,
    }


def _arrays_present(directory: Path, row: dict[str, Any]) -> bool:
    files = [row["image_file"], *([row["label_file"]] if row["label_file"] else [])]
    return all((directory / file).is_file() for file in files)


def _write_manifest(directory: Path, frame: pd.DataFrame) -> None:
    _io.atomic_write(
        directory / MANIFEST_NAME, lambda handle: frame.to_parquet(handle, index=False)
    )


def _remove_unreferenced(directory: Path, rows: Any) -> list[str]:
    """Deletes arrays no manifest row points to (left by interrupted or superseded runs)."""
    referenced = {row[key] for row in rows for key in ("image_file", "label_file") if row[key]}
    removed = []
    for path in sorted((directory / CASES_DIR).iterdir()):
        relative = f"{CASES_DIR}/{path.name}"
        if relative not in referenced:
            path.unlink()
            removed.append(relative)
    return removed


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    from filelock import FileLock

    with FileLock(str(directory / ".lock")):
        yield


def _safe_name(case_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)
