"""The CPU's cache sizes, read once from sysfs, to size the working sets of chunked kernels."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re

SYSFS_CACHES = pathlib.Path("/sys/devices/system/cpu/cpu0/cache")
"""Where Linux describes the caches of the first CPU (one `index<k>` folder per cache)."""

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclasses.dataclass(frozen=True)
class CpuCaches:
    """Data and unified cache sizes seen by one core, in bytes (None where unknown)."""

    l2_bytes: int | None
    """The core's level-2 cache."""

    last_level_bytes: int | None
    """The largest cache level the core sees (L3 on today's x86 servers, often shared)."""


def parse_size(text: str) -> int:
    """Bytes of a sysfs cache size such as `32K`, `1024K` or `32M`.

    Raises:
        ValueError: If the text is not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a cache size: {text!r}")
    return int(match.group(1)) * _UNIT[match.group(2).upper()]


def read_caches(root: pathlib.Path = SYSFS_CACHES) -> CpuCaches:
    """The caches described under `root` (a sysfs `cache` folder); unknown where it is absent.

    Instruction caches are left out. An unreadable entry counts as absent rather than failing:
    the sizes only tune chunk sizes, which have safe defaults.
    """
    sizes: dict[int, int] = {}
    for index in sorted(root.glob("index[0-9]*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            size = parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        sizes[level] = max(size, sizes.get(level, 0))
    return CpuCaches(
        l2_bytes=sizes.get(2),
        last_level_bytes=sizes[max(sizes)] if sizes else None,
    )


@functools.cache
def this_machine() -> CpuCaches:
    """The caches of the machine this process runs on (read once)."""
    return read_caches()
