"""The preprocess cache: same arrays as the source, invalidation, atomic writes, the CLI."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eva_coralbay import _io, cli
from eva_coralbay.data import adapters, cache
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.synthetic import layouts
from tests.data.adapter_fixtures import (
    FAST_PROFILE,
    NativeRoots,
    fresh_layout,
    isolated_cache,
    load_nifti,
    native_roots,
)

__all__ = ["isolated_cache", "native_roots"]

REPOSITORY = Path(__file__).resolve().parents[2]


def _btcv(
    root: Path, cache_root: Path, profile: PreprocessingProfile = FAST_PROFILE
) -> adapters.BTCV:
    dataset = adapters.BTCV(
        str(root), profile=profile, cache=str(cache_root), allow_incomplete=True
    )
    dataset.configure()
    return dataset


def _sha256_of(paths: list[Path]) -> str:
    outer = hashlib.sha256()
    for path in paths:
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


def test_cache_holds_exactly_the_standardised_source_arrays(
    native_roots: NativeRoots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = native_roots(adapters.BTCV)
    dataset = _btcv(root, tmp_path)
    report = cache.preprocess(dataset, tmp_path)
    assert sorted(report.written) == ["img0001", "img0002", "img0035"]

    manifest = cache.read_manifest(report.directory)
    assert manifest is not None and tuple(manifest.columns) == cache.MANIFEST_COLUMNS
    assert report.directory == tmp_path / "btcv" / FAST_PROFILE.fingerprint()
    rows = {row["case_id"]: row for row in manifest.to_dict("records")}
    for case in dataset.cases:
        expected = dataset.standardise(case)
        row = rows[case.case_id]
        image = np.load(report.directory / row["image_file"], mmap_mode="r")
        label = np.load(report.directory / row["label_file"], mmap_mode="r")
        np.testing.assert_array_equal(image, expected.image)
        np.testing.assert_array_equal(label, expected.label)
        np.testing.assert_array_equal(np.reshape(row["affine"], (4, 4)), expected.affine)
        assert list(row["shape"]) == list(expected.image.shape)
        np.testing.assert_allclose(row["spacing"], FAST_PROFILE.spacing)
        assert row["split"] == case.split
        assert row["source_sha256"] == _sha256_of(case.source_files())
        counts = np.bincount(expected.label.ravel(), minlength=len(adapters.BTCV.native_classes))
        assert list(row["label_voxel_counts"]) == counts.tolist()

    # A new adapter reads the cache, never the sources: break the reader to prove it.
    reader = _btcv(root, tmp_path)
    expected_images = [dataset.standardise(case).image for case in reader.cases]

    def no_source_reads(*_: object, **__: object) -> None:
        raise AssertionError("read the source although the cache is fresh")

    monkeypatch.setattr("eva_coralbay.data.readers.read_scan", no_source_reads)
    for index, expected_image in enumerate(expected_images):
        standard = reader.load_standard(index)
        assert isinstance(standard.image, np.memmap)
        volume, _, _ = reader[index]
        np.testing.assert_array_equal(volume[0].numpy(), expected_image)
    reader.validate()  # cached cases were checked when cached: no source read either


def test_changed_sources_and_profiles_invalidate_the_cache(tmp_path: Path) -> None:
    root = fresh_layout(adapters.BTCV, tmp_path / "btcv")
    cache_root = tmp_path / "cache"
    first = cache.preprocess(_btcv(root, cache_root), cache_root)
    store = first.directory
    array_files = sorted(p.name for p in (store / cache.CASES_DIR).iterdir())
    mtimes = {name: (store / cache.CASES_DIR / name).stat().st_mtime_ns for name in array_files}

    again = cache.preprocess(_btcv(root, cache_root), cache_root)
    assert sorted(again.reused) == ["img0001", "img0002", "img0035"] and not again.written

    # Same bytes, new modification time: the stat differs, the sha256 does not.
    image = root / "RawData/Training/img/img0002.nii.gz"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    stale = _btcv(root, cache_root)
    assert stale._cache is not None and not stale._cache.is_fresh(
        "img0002", stale.cases[1].source_files()
    )
    touched = cache.preprocess(stale, cache_root)
    assert touched.rehashed == ["img0002"] and not touched.written
    assert {n: (store / cache.CASES_DIR / n).stat().st_mtime_ns for n in array_files} == mtimes

    # New label content: recomputed, the superseded arrays removed.
    label_path = root / "RawData/Training/label/label0035.nii.gz"
    label = load_nifti(label_path)
    values = np.asarray(label.dataobj).copy()
    values[values == 6] = 0  # drop the liver
    layouts.save_nifti(label_path, values, label.affine)
    edited = cache.preprocess(_btcv(root, cache_root), cache_root)
    assert edited.written == ["img0035"] and len(edited.removed_files) == 2
    fresh = _btcv(root, cache_root)
    standard = fresh.load_standard(2)
    assert isinstance(standard.label, np.memmap) and not (np.asarray(standard.label) == 6).any()
    np.testing.assert_array_equal(standard.label, fresh.standardise(fresh.cases[2]).label)

    # Another profile: its own store, computed from scratch; the first store is left alone.
    coarse = PreprocessingProfile(spacing=(6.0, 6.0, 6.0))
    other = cache.preprocess(_btcv(root, cache_root, coarse), cache_root)
    assert other.directory != store and len(other.written) == 3
    assert len(cache.read_manifest(store)) == 3  # type: ignore[arg-type]


def test_a_failure_mid_run_leaves_only_complete_cases(
    tmp_path: Path, native_roots: NativeRoots, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = native_roots(adapters.BTCV)
    cache_root = tmp_path / "cache"
    real_write = _io.atomic_write
    writes: list[str] = []

    def failing_write(path: Path, write: object) -> None:
        writes.append(path.name)
        if path.name.endswith(".label.npy") and len(writes) > 4:  # the second case's label
            raise OSError("disk full")
        real_write(path, write)  # type: ignore[arg-type]

    monkeypatch.setattr(_io, "atomic_write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        cache.preprocess(_btcv(root, cache_root), cache_root)
    monkeypatch.setattr(_io, "atomic_write", real_write)

    store = cache.store_dir(cache_root, "btcv", FAST_PROFILE)
    manifest = cache.read_manifest(store)
    assert manifest is not None and list(manifest["case_id"]) == ["img0001"]
    dataset = _btcv(root, cache_root)
    assert dataset._cache is not None
    assert not dataset._cache.is_fresh("img0002", dataset.cases[1].source_files())

    resumed = cache.preprocess(_btcv(root, cache_root), cache_root)
    assert resumed.reused == ["img0001"] and resumed.written == ["img0002", "img0035"]
    assert not [p for p in (store / cache.CASES_DIR).iterdir() if p.name.endswith(".tmp")]


# A user's adapter in a module of its own: version 2 fixes how it reads one label.
USER_ADAPTER = """
import numpy as np
from eva_coralbay.data import adapters


class FixedBTCV(adapters.BTCV):
    def standardise(self, case):
        standard = super().standardise(case)
        if {fixed}:
            standard.label[standard.label == 6] = 0  # the liver, mislabelled in this release
        return standard
"""


def test_a_change_to_the_adapter_code_invalidates_its_cached_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fresh_layout(adapters.BTCV, tmp_path / "btcv")
    cache_root, module = tmp_path / "cache", tmp_path / "user_btcv.py"

    def adapter() -> adapters.BTCV:
        fixed_btcv = _import_file(module, monkeypatch).FixedBTCV
        dataset = fixed_btcv(
            str(root), profile=FAST_PROFILE, cache=str(cache_root), allow_incomplete=True
        )
        dataset.configure()
        return dataset

    module.write_text(USER_ADAPTER.format(fixed=False))
    first = cache.preprocess(adapter(), cache_root)
    assert len(first.written) == 3
    assert len(cache.preprocess(adapter(), cache_root).reused) == 3  # same code: reused
    assert (np.asarray(adapter().load_standard(2).label) == 6).any()

    module.write_text(USER_ADAPTER.format(fixed=True))
    stale = adapter()
    assert stale._cache is not None
    assert not any(stale._cache.is_fresh(c.case_id, c.source_files()) for c in stale.cases)
    assert not (np.asarray(stale.load_standard(2).label) == 6).any()  # from the source, fixed
    second = cache.preprocess(stale, cache_root)
    assert sorted(second.written) == ["img0001", "img0002", "img0035"] and not second.reused
    assert not (np.asarray(adapter().load_standard(2).label) == 6).any()  # cached, fixed


KILLED_DATASET = textwrap.dedent(
    """
    import numpy as np
    from eva_coralbay.data.profile import PreprocessingProfile

    class Case:
        def __init__(self, case_id, source):
            self.case_id, self.split, self.source = case_id, "train", source
        def source_files(self):
            return [self.source]

    class Standard:
        def __init__(self, seed):
            rng = np.random.default_rng(seed)
            self.image = rng.random((20, 20, 20), dtype=np.float32)
            self.label = (self.image > 0.5).astype(np.uint8)
            self.affine = np.eye(4)

    class Dataset:
        task_id = "killed"
        native_classes = ("background", "organ")
        profile = PreprocessingProfile()
        def __init__(self, sources):
            self.cases = [Case(f"case{i}", s) for i, s in enumerate(sources)]
        def standardise(self, case):
            return Standard(int(case.case_id[4:]))
    """
)

KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from eva_coralbay import _io
    from eva_coralbay.data import cache
    from killed_dataset import Dataset

    real_write = _io.atomic_write
    def write_then_die(path, write):
        if path.name.startswith("case1-") and path.name.endswith(".label.npy"):
            def partial(handle):
                handle.write(b"\\x93NUMPY")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_write(path, partial)
        return real_write(path, write)
    if sys.argv[2] == "kill":
        _io.atomic_write = write_then_die
    sources = sorted(Path(sys.argv[1]).glob("source*.bin"))
    cache.preprocess(Dataset(sources), Path(sys.argv[1]) / "cache")
    """
)


def test_a_killed_process_leaves_nothing_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(3):
        (tmp_path / f"source{index}.bin").write_bytes(bytes([index]) * 100)
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    (tmp_path / "killed_dataset.py").write_text(KILLED_DATASET)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(tmp_path)])}

    killed = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "kill"], env=environment, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    store = cache.store_dir(tmp_path / "cache", "killed", PreprocessingProfile())
    manifest = cache.read_manifest(store)
    assert manifest is not None and list(manifest["case_id"]) == ["case0"]
    leftovers = [p.name for p in (store / cache.CASES_DIR).iterdir()]
    assert any(name.endswith(".tmp") for name in leftovers)  # SIGKILL runs no cleanup
    dataset_type = _import_file(tmp_path / "killed_dataset.py", monkeypatch).Dataset
    reader = cache.CacheReader.open(
        tmp_path / "cache", "killed", PreprocessingProfile(), dataset_type
    )
    assert reader is not None
    assert reader.load("case0", [tmp_path / "source0.bin"]) is not None
    assert reader.load("case1", [tmp_path / "source1.bin"]) is None

    finished = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "finish"], env=environment, capture_output=True
    )
    assert finished.returncode == 0, finished.stderr.decode()
    manifest = cache.read_manifest(store)
    assert manifest is not None and list(manifest["case_id"]) == ["case0", "case1", "case2"]
    assert not [p for p in (store / cache.CASES_DIR).iterdir() if p.name.endswith(".tmp")]
    row = manifest.set_index("case_id").loc["case1"]
    np.testing.assert_array_equal(
        np.load(store / row["label_file"]),
        (np.random.default_rng(1).random((20, 20, 20), dtype=np.float32) > 0.5).astype(np.uint8),
    )


def test_cli_validates_then_fills_the_cache(
    tmp_path: Path, native_roots: NativeRoots, capsys: pytest.CaptureFixture[str]
) -> None:
    profile_file = tmp_path / "profile.json"
    profile_file.write_text(json.dumps(FAST_PROFILE.to_dict()))
    arguments = [
        "preprocess", "--dataset", "msd_task9_spleen", "--root",
        str(native_roots(adapters.MSDSpleen)), "--profile", str(profile_file),
        "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    assert cli.main(arguments) == 1  # the fixture holds 3 of Spleen's 41 cases
    assert "split 'train' has 2 of the 32 cases" in capsys.readouterr().err

    assert cli.main([*arguments, "--allow-incomplete"]) == 0
    output = capsys.readouterr().out
    assert "[3/3] spleen_10: written" in output and "3 written, 0 reused" in output
    store = cache.store_dir(tmp_path / "cache", "msd_task9_spleen", FAST_PROFILE)
    assert len(cache.read_manifest(store)) == 3  # type: ignore[arg-type]

    assert cli.main([*arguments, "--allow-incomplete"]) == 0
    assert "0 written, 3 reused" in capsys.readouterr().out
    assert cli.main(["preprocess", "--dataset", "nope", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def _import_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Imports a module from a file, registered in sys.modules for the test's duration."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, path.stem, module)
    spec.loader.exec_module(module)
    return module
