import gzip
import pathlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from eva_coralbay.data import cache as cache_store
from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.data.readers import ScanReadError
from eva_coralbay.data.scans import find_scans
from eva_coralbay.pretraining.scans import ScanError, ScanStore

PROFILE = CORALBAY_PROFILE


def _write_nifti(path: pathlib.Path, volume: np.ndarray, spacing: float = 1.5) -> pathlib.Path:
    nib.save(nib.Nifti1Image(volume, np.diag([spacing, spacing, spacing, 1.0])), path)
    return path


def _body_phantom(shape: tuple[int, int, int] = (40, 40, 40)) -> np.ndarray:
    volume = np.full(shape, -1000, dtype=np.int16)
    volume[8:32, 10:30, 5:35] = 40
    return volume


def test_find_scans_expands_files_folders_globs_and_manifests(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    folder = tmp_path / "ct"
    (folder / "nested").mkdir(parents=True)
    first = _write_nifti(folder / "a.nii.gz", _body_phantom())
    second = _write_nifti(folder / "nested" / "b.nii", _body_phantom())
    (folder / "notes.md").write_text("not a scan")
    # find_scans resolves paths; ../shared may itself be a symbolic link.
    dicom = (totalsegmentator_dir / "example_ct_dicom").resolve()

    assert find_scans([folder]) == [first, second]
    assert find_scans([str(folder / "**" / "*.nii*")]) == [first, second]
    assert find_scans([dicom]) == [dicom]

    pd.DataFrame({"path": ["ct/a.nii.gz", str(dicom)]}).to_csv(tmp_path / "list.csv", index=False)
    assert find_scans([tmp_path / "list.csv"]) == [first, dicom]
    pd.DataFrame({"path": ["ct/nested/b.nii"]}).to_parquet(tmp_path / "list.parquet")
    assert find_scans([tmp_path / "list.parquet"]) == [second]
    (tmp_path / "list.txt").write_text("# scans\nct/a.nii.gz\n\nct/a.nii.gz\n")
    assert find_scans([tmp_path / "list.txt", first]) == [first]


def test_find_scans_names_what_is_missing_or_empty(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing.nii.gz"):
        find_scans([tmp_path / "missing.nii.gz"])
    with pytest.raises(FileNotFoundError, match=r"\*.nrrd"):
        find_scans([str(tmp_path / "*.nrrd")])
    assert find_scans([]) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: holds no scans"):
        find_scans([tmp_path / "empty"])
    (tmp_path / "slice.dcm").write_bytes(b"\0" * 128 + b"DICM")
    with pytest.raises(ValueError, match=r"slice.dcm: a single DICOM file is one 2D slice"):
        find_scans([tmp_path / "slice.dcm"])
    (tmp_path / "notes.md").write_text("not a scan")
    with pytest.raises(ValueError, match=r"notes.md: unsupported file type"):
        find_scans([tmp_path / "notes.md"])
    pd.DataFrame({"file": ["a.nii.gz"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv.*'path' column"):
        find_scans([tmp_path / "bad.csv"])


def test_store_standardises_an_lps_scan_like_nibabel_reorients_it(
    totalsegmentator_dir: pathlib.Path,
) -> None:
    path = totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"
    store = ScanStore([path], PROFILE)
    store.prepare()
    # Already at 1.5 mm: standardising is a pure reorientation to RAS.
    canonical = nib.funcs.as_closest_canonical(nib.load(path))  # type: ignore[arg-type]
    expected = np.asarray(canonical.dataobj).astype(np.int16)
    (stored,) = store.stored
    assert stored.volume.dtype == np.int16
    np.testing.assert_array_equal(stored.volume, expected)
    assert stored.foreground_cells.size > 0


def test_store_resamples_to_the_profile_spacing(totalsegmentator_dir: pathlib.Path) -> None:
    path = totalsegmentator_dir / "example_ct_sm.nii.gz"  # 122 x 101 x 30 at 3 mm
    store = ScanStore([path], PROFILE)
    store.prepare()
    shape = store.stored[0].volume.shape
    np.testing.assert_allclose(shape, [244, 202, 60], atol=1)


def test_unreadable_scan_is_named_and_skip_bad_reports_every_bad_scan(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _write_nifti(tmp_path / "good.nii.gz", _body_phantom())
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(gzip.compress(b"this is not a NIfTI header"))
    air = _write_nifti(tmp_path / "air.nii.gz", np.full((40, 40, 40), -1000, dtype=np.int16))

    with pytest.raises(ScanReadError, match=r"broken.nii.gz"):
        ScanStore([good, broken], PROFILE).prepare()

    store = ScanStore([broken, good, air], PROFILE, skip_bad=True)
    store.prepare()
    assert [scan.source for scan in store.stored] == [good]
    assert [path for path, _ in store.skipped] == [broken, air]
    assert "no voxel above -500" in store.skipped[1][1]
    assert "skipped 2 of 3 scans" in caplog.text

    with pytest.raises(ScanError, match=r"none of the 2 scans"):
        ScanStore([broken, air], PROFILE, skip_bad=True).prepare()


def test_scan_smaller_than_the_smallest_crop_region_is_rejected(tmp_path: pathlib.Path) -> None:
    thin = _write_nifti(tmp_path / "thin.nii.gz", _body_phantom((40, 40, 20)))
    with pytest.raises(ScanError, match=r"thin.nii.gz.*\(40, 40, 20\).*smaller than"):
        ScanStore([thin], PROFILE, min_shape=(32, 32, 32)).prepare()


def test_disk_cache_standardises_once_and_serves_memory_maps(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_nifti(tmp_path / "scan.nii.gz", _body_phantom(), spacing=3.0)
    cache = tmp_path / "cache"
    first = ScanStore([path], PROFILE, cache_dir=cache)
    first.prepare()
    in_memory = ScanStore([path], PROFILE)
    in_memory.prepare()
    np.testing.assert_array_equal(first.stored[0].volume, in_memory.stored[0].volume)
    assert len(list(cache.glob("*.npy"))) == 1
    assert not list(cache.glob(".*"))  # no temporary file left behind

    def refuse(*args: object) -> np.ndarray:
        raise AssertionError("a cached scan was read again")

    monkeypatch.setattr(cache_store, "read_standardised_hu", refuse)
    second = ScanStore([path], PROFILE, cache_dir=cache)
    second.prepare()
    assert isinstance(second.stored[0].volume, np.memmap)
    np.testing.assert_array_equal(second.stored[0].volume, in_memory.stored[0].volume)


def test_disk_cache_is_invalidated_when_the_scan_changes(tmp_path: pathlib.Path) -> None:
    path = _write_nifti(tmp_path / "scan.nii.gz", _body_phantom())
    cache = tmp_path / "cache"
    ScanStore([path], PROFILE, cache_dir=cache).prepare()
    changed = _body_phantom()
    changed[:5] = 500
    _write_nifti(path, changed)
    store = ScanStore([path], PROFILE, cache_dir=cache)
    store.prepare()
    assert (store.stored[0].volume[:5] == 500).all()
