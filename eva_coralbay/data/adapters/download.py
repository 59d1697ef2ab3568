"""Checksum-verified download and extraction of public benchmark archives."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Resource:
    """A public archive: where it is, what it is called and its checksum."""

    url: str
    """An http(s) URL, or a local path / file:// URL to an already downloaded copy."""

    filename: str
    """The archive's file name."""

    md5: str
    """Its MD5 digest (the checksum the publishers give)."""

    extract: bool = True
    """Whether to unpack it (zip / tar) into the dataset root."""


def fetch(resource: Resource, root: Path, archive_dir: Path | None = None) -> Path:
    """Downloads (or copies) an archive, verifies its MD5 and unpacks it into `root`.

    Args:
        resource: The archive.
        root: The dataset folder it is unpacked into.
        archive_dir: Where the archive is kept; `root` when None.

    Returns:
        The path of the verified archive.

    Raises:
        RuntimeError: When the checksum does not match (the file is left for inspection).
    """
    from monai.apps import utils as monai_utils

    archive_dir = archive_dir or root
    archive_dir.mkdir(parents=True, exist_ok=True)
    local = _local_path(resource.url)
    archive = local if local is not None else archive_dir / resource.filename
    if local is None:
        # MONAI downloads to a temporary name, checks the hash and only then moves it in place.
        monai_utils.download_url(
            resource.url, filepath=archive, hash_val=resource.md5, hash_type="md5"
        )
    elif not monai_utils.check_hash(archive, resource.md5, "md5"):
        raise RuntimeError(f"{archive}: MD5 differs from {resource.md5}; the copy is corrupt")
    if resource.extract:
        monai_utils.extractall(archive, output_dir=root, hash_val=resource.md5, hash_type="md5")
    return archive


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    if "://" not in url:
        return Path(url)
    return None
