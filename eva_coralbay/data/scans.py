"""The one scan finder: scan files, DICOM series folders, folders of scans, globs and manifests.

`coralbay embed` and `coralbay pretrain` take their inputs through `find_scans`, so the same
arguments mean the same scans to both.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pathlib
from collections.abc import Iterable, Sequence

from eva_coralbay import _io
from eva_coralbay.data.readers import (
    FORMATS_BY_SUFFIX,
    ScanNotFoundError,
    ScanReadError,
    scan_format,
)

SCAN_SUFFIXES = tuple(FORMATS_BY_SUFFIX)
"""Single-file scan formats the readers take; DICOM series are folders."""

MANIFEST_SUFFIXES = (".csv", ".parquet", ".txt")
"""Files that list scans (a `path` column, or one path per line)."""

_READABLE = "NIfTI, MetaImage or NRRD files, or DICOM series folders"


def find_scans(sources: Iterable[str | os.PathLike[str]]) -> list[pathlib.Path]:
    """Expands files, DICOM folders, folders of scans, globs and manifests into scan paths.

    Args:
        sources: Each a scan file, a DICOM series folder, a folder searched recursively (in
            name order; a folder holding DICOM slices is one series), a glob pattern, or a
            manifest (.csv/.parquet with a `path` column, .txt with one path per line, `#`
            comments; relative paths are relative to the manifest).

    Returns:
        The scans as absolute paths with symbolic links resolved, in the order given, each once.

    Raises:
        ScanNotFoundError: When a source does not exist or a glob matches nothing.
        ScanReadError: For a file no reader takes (a single DICOM slice, say), a folder or
            manifest that holds no scan, or a malformed manifest; the message names it.
    """
    scans: dict[pathlib.Path, None] = {}
    for source in sources:
        for scan in _expand(os.fspath(source)):
            scans.setdefault(scan, None)
    return list(scans)


def _expand(source: str) -> list[pathlib.Path]:
    if glob.has_magic(source):
        matches = sorted(glob.glob(source, recursive=True))
        if not matches:
            raise ScanNotFoundError(source, "the pattern matches no file")
        return [scan for match in matches for scan in _expand(match)]
    path = pathlib.Path(source).expanduser().resolve()
    if not path.exists():
        raise ScanNotFoundError(source, "no such file or folder")
    if path.is_dir():
        found = _scans_in_folder(path)
        if not found:
            raise ScanReadError(path, f"holds no scans ({_READABLE})")
        return found
    if path.name.lower().endswith(MANIFEST_SUFFIXES):
        found = [scan for entry in _read_manifest(path) for scan in _expand(entry)]
        if not found:
            raise ScanReadError(path, "the manifest lists no scans")
        return found
    scan_format(path)  # a clear error for a file no reader takes
    return [path]


def _scans_in_folder(folder: pathlib.Path) -> list[pathlib.Path]:
    scans = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        root_path = pathlib.Path(root)
        if _is_dicom_series(root_path, files):
            scans.append(root_path)
        scans += [
            root_path / name
            for name in sorted(files)
            if name.lower().endswith(SCAN_SUFFIXES) and not name.startswith(".")
        ]
    return scans


def _is_dicom_series(folder: pathlib.Path, files: Sequence[str]) -> bool:
    if any(name.lower().endswith(".dcm") for name in files):
        return True
    # DICOM files often have no extension (or a UID for a name): the magic bytes decide.
    candidates = [
        name
        for name in sorted(files)
        if not name.startswith(".") and not name.lower().endswith(SCAN_SUFFIXES + MANIFEST_SUFFIXES)
    ]
    return any(_io.is_dicom_file(folder / name) for name in candidates[:3])


def _read_manifest(path: pathlib.Path) -> list[str]:
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines()]
        entries = [line for line in lines if line and not line.startswith("#")]
    else:
        import pandas as pd

        try:
            table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except Exception as error:
            raise ScanReadError(path, f"cannot read the manifest ({error})") from error
        if "path" not in table.columns:
            raise ScanReadError(
                path, f"a manifest needs a 'path' column, found {list(table.columns)}"
            )
        entries = [str(entry) for entry in table["path"].dropna()]
    return [str(path.parent / entry) for entry in entries]


def content_hash(scan: str | os.PathLike[str]) -> str:
    """SHA-256 of a scan's bytes: the file's own, or for a DICOM folder one over its files.

    A folder's digest covers each visible file directly inside it (the series' slices), in name
    order, by name and content digest, so a renamed, added or edited slice changes it.

    Raises:
        OSError: When a file cannot be read.
    """
    path = pathlib.Path(scan)
    if not path.is_dir():
        return _io.sha256_of(path)
    digest = hashlib.sha256()
    for child in sorted(path.iterdir()):
        if child.is_file() and not child.name.startswith("."):
            digest.update(f"{child.name}\0{_io.sha256_of(child)}\n".encode())
    return digest.hexdigest()
