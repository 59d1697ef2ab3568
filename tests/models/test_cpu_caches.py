"""Cache sizes read from a sysfs tree, and the attention backward's steps sized from them."""

from __future__ import annotations

import pathlib

import pytest

from eva_coralbay.models import cpu_caches, window_attention


def _write_sysfs(root: pathlib.Path, caches: list[tuple[int, str, str]]) -> pathlib.Path:
    for index, (level, kind, size) in enumerate(caches):
        folder = root / f"index{index}"
        folder.mkdir(parents=True)
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    return root


def test_the_two_machine_kinds_read_as_described(tmp_path: pathlib.Path) -> None:
    # The sysfs of the AVX-512 kind (1 MiB L2 per core as sysfs says, 32 MiB L3), and of the
    # AVX2 kind's 512 KiB L2 with a 16 MiB L3.
    big = _write_sysfs(
        tmp_path / "big",
        [
            (1, "Data", "32K"),
            (1, "Instruction", "32K"),
            (2, "Unified", "1024K"),
            (3, "Unified", "32768K"),
        ],
    )
    small = _write_sysfs(
        tmp_path / "small",
        [
            (1, "Data", "32K"),
            (1, "Instruction", "64K"),
            (2, "Unified", "512K"),
            (3, "Unified", "16M"),
        ],
    )
    assert cpu_caches.read_caches(big) == cpu_caches.CpuCaches(1 << 20, 32 << 20)
    assert cpu_caches.read_caches(small) == cpu_caches.CpuCaches(512 << 10, 16 << 20)
    big_step = window_attention.backward_step_elements(cpu_caches.read_caches(big))
    small_step = window_attention.backward_step_elements(cpu_caches.read_caches(small))
    assert big_step == 2 * small_step  # steps follow the cache, not one machine's constant
    assert 2 * 4 * big_step <= 32 << 20  # both float32 buffers fit the cache they are sized to


def test_a_machine_without_sysfs_caches_gets_the_fallback(tmp_path: pathlib.Path) -> None:
    unknown = cpu_caches.read_caches(tmp_path / "absent")
    assert unknown == cpu_caches.CpuCaches(None, None)
    fallback = window_attention.backward_step_elements(unknown)
    assert fallback == window_attention.backward_step_elements(
        cpu_caches.CpuCaches(None, window_attention._FALLBACK_LAST_LEVEL_BYTES)
    )


def test_an_unreadable_entry_is_skipped_and_sizes_are_bounded(tmp_path: pathlib.Path) -> None:
    root = _write_sysfs(tmp_path, [(2, "Unified", "garbage"), (3, "Unified", "1G")])
    caches = cpu_caches.read_caches(root)
    assert caches == cpu_caches.CpuCaches(None, 1 << 30)
    assert window_attention.backward_step_elements(caches) == 1 << 24  # 64 MiB at most
    tiny = cpu_caches.CpuCaches(None, 64 << 10)
    assert window_attention.backward_step_elements(tiny) == 1 << 18  # 1 MiB at least


@pytest.mark.parametrize(("text", "expected"), [("32K", 32 << 10), ("2M", 2 << 20), ("512", 512)])
def test_sizes_parse(text: str, expected: int) -> None:
    assert cpu_caches.parse_size(text) == expected


def test_a_malformed_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cache size"):
        cpu_caches.parse_size("lots")
