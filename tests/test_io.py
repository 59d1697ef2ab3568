"""The shared file I/O: atomic writes keep the old file on any failure, checksums, DICOM probe."""

from __future__ import annotations

import hashlib
import os
import pathlib
import stat

import numpy as np
import pytest

from eva_coralbay import _io


def test_a_partial_write_never_replaces_the_target(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "array.npy"
    np.save(target, np.zeros(3))

    def half_write(handle: object) -> None:
        handle.write(b"\x93NUMPY partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(target, half_write)
    np.testing.assert_array_equal(np.load(target), np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["array.npy"]


def test_atomic_path_serves_writers_that_take_a_file_name(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "new" / "folder" / "scan.nii.gz"

    with _io.atomic_path(target, suffix=".nii.gz") as temporary:
        assert temporary.parent == target.parent and temporary.name.endswith(".nii.gz")
        assert temporary.name.startswith(".")  # never taken for an entry while it is written
        temporary.write_bytes(b"volume")
        assert not target.exists()

    assert target.read_bytes() == b"volume"
    assert sorted(p.name for p in target.parent.iterdir()) == ["scan.nii.gz"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old")

    with pytest.raises(ValueError, match="bad table"), _io.atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise ValueError("bad table")

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]


def test_written_files_get_the_mode_of_a_new_file(tmp_path: pathlib.Path) -> None:
    # mkstemp creates 0o600 files; a leaderboard or cache shared by a group needs the umask's.
    previous = os.umask(0o022)
    try:
        _io.atomic_write_text(tmp_path / "a.json", "{}")
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE(
        (tmp_path / "b.json").stat().st_mode
    )


def test_atomic_copy_and_text(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 5000)
    _io.atomic_copy(source, tmp_path / "copy" / "target.bin")
    _io.atomic_write_text(tmp_path / "text.txt", "Hounsfield ∈ [-1000, 1000]\n")

    assert (tmp_path / "copy" / "target.bin").read_bytes() == source.read_bytes()
    assert (tmp_path / "text.txt").read_text(encoding="utf-8") == "Hounsfield ∈ [-1000, 1000]\n"


def test_sha256_of_matches_hashlib_across_block_boundaries(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "weights.safetensors"
    content = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(content)

    assert _io.sha256_of(path) == hashlib.sha256(content).hexdigest()


def test_dicom_probe_agrees_with_pydicom(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    import pydicom.misc

    dicom_files = sorted(p for p in totalsegmentator_dir.rglob("*") if p.is_file())[:400]
    (tmp_path / "short").write_bytes(b"DICM")
    (tmp_path / "moved_marker").write_bytes(b"\0" * 127 + b"DICM" + b"\0" * 10)
    candidates = [*dicom_files, tmp_path / "short", tmp_path / "moved_marker"]

    verdicts = [_io.is_dicom_file(path) for path in candidates]

    assert verdicts == [bool(pydicom.misc.is_dicom(str(path))) for path in candidates]
    assert any(verdicts) and not all(verdicts)  # the real data holds DICOM slices and others
    assert not _io.is_dicom_file(tmp_path) and not _io.is_dicom_file(tmp_path / "missing")


def test_atomic_write_tree_writes_what_changed_and_removes_the_rest(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "site"
    first = {"index.html": b"index", "models/a.html": b"a", "models/b.html": b"b"}
    assert _io.atomic_write_tree(folder, first) == sorted(first)
    kept = (folder / "models" / "a.html").stat()
    (folder / "old" / "page.html").parent.mkdir()
    (folder / "old" / "page.html").write_bytes(b"stale")
    (folder / ".index.html.x.tmp").write_bytes(b"interrupted")

    second = {"index.html": b"new index", "models/a.html": b"a", "tasks/t.html": b"t"}
    assert _io.atomic_write_tree(folder, second) == ["index.html", "tasks/t.html"]
    files = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }
    assert files == second
    assert sorted(path.name for path in folder.iterdir()) == ["index.html", "models", "tasks"]
    unchanged = (folder / "models" / "a.html").stat()
    assert (unchanged.st_ino, unchanged.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)


def test_atomic_write_tree_refuses_paths_outside_and_keeps_the_tree_on_failure(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "site"
    _io.atomic_write_tree(folder, {"a.html": b"old a", "b.html": b"old b"})
    for bad in ("../escape.html", "/etc/passwd", "", "a/../../b"):
        with pytest.raises(ValueError, match="is not a path inside"):
            _io.atomic_write_tree(folder, {bad: b"x"})

    def failing_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write_tree(folder, {"a.html": b"new a", "b.html": b"new b"})
    monkeypatch.undo()
    assert (folder / "a.html").read_bytes() == b"old a"
    assert sorted(path.name for path in folder.iterdir()) == ["a.html", "b.html"]
    assert not (tmp_path / "escape.html").exists()
