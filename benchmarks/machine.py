"""What machine a number was measured on: CPU model, vector ISA, cache sizes, threads, load."""

from __future__ import annotations

import os
import platform
import subprocess


def _lscpu() -> dict[str, str]:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = {}
    for line in output.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields[key.strip()] = value.strip()
    return fields


def vector_isa(flags: str) -> str:
    """The widest x86 vector extension among the CPU flags (AVX-512, AVX2, ...)."""
    present = set(flags.split())
    for flag, name in (
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
        ("avx", "AVX"),
        ("sse4_2", "SSE4.2"),
    ):
        if flag in present:
            return name
    return "no x86 vector flags" if present else "unknown ISA"


def describe() -> str:
    """One line: model, ISA, L2 and L3 cache, logical CPUs and the load average."""
    fields = _lscpu()
    model = fields.get("Model name") or platform.processor() or "unknown CPU"
    caches = ", ".join(
        f"{name} {fields[key]}"
        for name, key in (("L2", "L2 cache"), ("L3", "L3 cache"))
        if key in fields
    )
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{model} ({vector_isa(fields.get('Flags', ''))}; {caches or 'cache sizes unknown'}), "
        f"{os.cpu_count()} CPUs, load average {load}"
    )


def status_bytes(field: str) -> int:
    """A memory field of this process's /proc/self/status in bytes (`VmHWM`: peak RSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def fp32_gemm_peak_gflops(size: int = 2048, reps: int = 10) -> float:
    """The best float32 matrix-product rate torch reaches here (GFLOP/s), with its threads.

    The physical limit that a speed-up's fraction is reported against: the best of `reps`
    products of two `size` x `size` matrices after a warm-up.
    """
    import time

    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator) for _ in range(2))
    out = torch.empty(size, size)
    torch.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


if __name__ == "__main__":
    print(describe())
