"""The scan-volume cache: computed once, memory-mapped, rebuilt when its key or file goes bad."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from eva_coralbay.data import cache
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.readers import ScanReadError
from eva_coralbay.data.synthetic import layouts, phantoms
from tests.data.adapter_fixtures import FAST_PROFILE

ReadCounter = Callable[[], int]


def _write_phantom(path: Path, seed: int = 0) -> Path:
    phantom = phantoms.make_phantom(seed, shape=(40, 32, 28), spacing=5.0)
    layouts.save_nifti(path, phantom.image, phantom.affine)
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    """Counts the scans the cache standardises from their source (its only way to compute)."""
    count = 0
    real = cache.read_standardised_hu

    def counted(scan: Path, profile: PreprocessingProfile) -> npt.NDArray[np.int16]:
        nonlocal count
        count += 1
        return real(scan, profile)

    monkeypatch.setattr(cache, "read_standardised_hu", counted)
    return lambda: count


def test_a_scan_is_standardised_once_then_memory_mapped(
    tmp_path: Path, reads: ReadCounter, totalsegmentator_dir: Path
) -> None:
    scan = totalsegmentator_dir / "example_ct_sm.nii.gz"  # real CT, 3 mm
    root = tmp_path / "scans"
    first = cache.ScanVolumeCache(root).volume(scan, FAST_PROFILE)
    again = cache.ScanVolumeCache(root).volume(scan, FAST_PROFILE)
    assert reads() == 1
    assert isinstance(first, np.memmap) and isinstance(again, np.memmap)
    assert again.dtype == np.int16 and again.ndim == 3
    np.testing.assert_array_equal(again, cache.read_standardised_hu(scan, FAST_PROFILE))
    entry = cache.ScanVolumeCache(root).entry_path(scan, FAST_PROFILE)
    assert list(root.iterdir()) == [entry]  # no temporary file left behind
    assert entry.name.startswith("example_ct_sm-")

    coarse = PreprocessingProfile(spacing=(6.0, 6.0, 6.0))
    cache.ScanVolumeCache(root).volume(scan, coarse)
    assert reads() == 3 and len(list(root.iterdir())) == 2  # another profile, another entry


def test_a_new_code_version_rebuilds_instead_of_reusing_the_stale_entry(
    tmp_path: Path, reads: ReadCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = _write_phantom(tmp_path / "scan.nii.gz")
    root = tmp_path / "scans"
    stale = cache.ScanVolumeCache(root)
    stale.volume(scan, FAST_PROFILE)
    # The cache's own module decides what an entry holds, so its code is part of the version.
    assert cache.code_version(cache.ScanVolumeCache) != cache.code_version()

    monkeypatch.setattr(cache, "code_version", lambda dataset_type=None: "a-reader-fix")
    fixed = cache.ScanVolumeCache(root)
    assert fixed.entry_path(scan, FAST_PROFILE) != stale.entry_path(scan, FAST_PROFILE)
    fixed.volume(scan, FAST_PROFILE)
    assert reads() == 2
    fixed.volume(scan, FAST_PROFILE)
    assert reads() == 2  # the new entry is reused in turn


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda path: path.write_bytes(b""),
        lambda path: path.write_bytes(path.read_bytes()[:200]),  # header, then cut off
        lambda path: path.write_bytes(b"not a numpy file"),
        lambda path: np.save(path, np.zeros((4, 4, 4), dtype=np.float32)),  # not an entry's form
    ],
    ids=["empty", "truncated", "garbage", "float32"],
)
def test_an_unreadable_entry_is_rebuilt_with_a_warning(
    tmp_path: Path,
    reads: ReadCounter,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[Path], object],
) -> None:
    scan = _write_phantom(tmp_path / "scan.nii.gz")
    volumes = cache.ScanVolumeCache(tmp_path / "scans")
    expected = np.array(volumes.volume(scan, FAST_PROFILE))
    entry = volumes.entry_path(scan, FAST_PROFILE)
    corrupt(entry)

    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        rebuilt = volumes.volume(scan, FAST_PROFILE)
    assert reads() == 2
    assert f"rebuilding the unreadable cache entry {entry}" in caplog.text
    np.testing.assert_array_equal(rebuilt, expected)
    np.testing.assert_array_equal(np.load(entry, mmap_mode="r"), expected)  # repaired on disk


def test_a_changed_scan_gets_a_new_entry(tmp_path: Path, reads: ReadCounter) -> None:
    scan = _write_phantom(tmp_path / "scan.nii.gz", seed=0)
    volumes = cache.ScanVolumeCache(tmp_path / "scans")
    before = np.array(volumes.volume(scan, FAST_PROFILE))
    old_entry = volumes.entry_path(scan, FAST_PROFILE)

    _write_phantom(scan, seed=1)  # new content: size and mtime change
    changed = volumes.volume(scan, FAST_PROFILE)
    assert reads() == 2 and volumes.entry_path(scan, FAST_PROFILE) != old_entry
    assert not np.array_equal(changed, before)
    np.testing.assert_array_equal(changed, cache.read_standardised_hu(scan, FAST_PROFILE))

    # The key is a stat, not a content hash: a new modification time alone is a new entry.
    stat = scan.stat()
    os.utime(scan, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = volumes.entry_path(scan, FAST_PROFILE)
    assert touched != old_entry and not touched.exists()


def test_every_file_of_a_dicom_folder_is_in_the_key(tmp_path: Path) -> None:
    # The key only stats the files, so stand-in slices show it without reading a series.
    series = tmp_path / "series"
    series.mkdir()
    for index in range(3):
        (series / f"slice{index}.dcm").write_bytes(bytes([index]) * 64)
    volumes = cache.ScanVolumeCache(tmp_path / "scans")
    first = volumes.entry_path(series, FAST_PROFILE)
    assert first.name.startswith("series-")

    (series / "slice1.dcm").write_bytes(b"\1" * 65)
    resized = volumes.entry_path(series, FAST_PROFILE)
    (series / "slice3.dcm").write_bytes(b"\3" * 64)
    added = volumes.entry_path(series, FAST_PROFILE)
    assert len({first, resized, added}) == 3


def test_a_missing_scan_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.nii.gz"
    with pytest.raises(ScanReadError, match=r"gone.nii.gz"):
        cache.ScanVolumeCache(tmp_path / "scans").volume(missing, FAST_PROFILE)
