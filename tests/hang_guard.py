"""Hang guards for the tests' subprocesses that no correct run can trip, however slow the CPU.

A total wall-clock limit is a timed assertion in disguise: the same run takes 3-5x longer on one
machine kind than on another. So a subprocess here is ended only when it stops making progress
(no output for `silence_s` seconds), and the few waits that cannot watch output scale their
limit by this machine's measured slowness. Either way the failure carries the captured log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

_REFERENCE_CALIBRATION_S = 0.045
"""`_calibration_seconds()` on the machine the limits were written on (AMD EPYC family 25 model
17, AVX-512, 2 MiB L2, the other core busy). Slower machines stretch every limit by their ratio."""

DEFAULT_SILENCE_S = 600.0
"""How long a subprocess may print nothing before it counts as hung, on the reference machine.
eva and the demo print at least every few seconds; their longest quiet stretch (imports, one
validation pass) is under a minute there."""


def _calibration_seconds() -> float:
    """Best of five of a small fixed workload, on one thread: fp32 GEMMs and interpreter work."""
    import torch  # here, not at the top: the leaderboard's tests run without torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        matrix = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            product = matrix
            for _ in range(60):
                product = torch.mm(product, matrix).mul_(1e-2)
            total = 0
            for index in range(600_000):
                total += index % 7
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        torch.set_num_threads(threads)


@functools.cache
def slowness() -> float:
    """How many times slower than the reference machine this one is (at least 1).

    `CORALBAY_TEST_SLOWNESS` overrides the measurement (e.g. under a profiler or emulator).
    """
    configured = os.environ.get("CORALBAY_TEST_SLOWNESS")
    if configured:
        return max(1.0, float(configured))
    return max(1.0, _calibration_seconds() / _REFERENCE_CALIBRATION_S)


def hang_timeout(seconds: float) -> float:
    """A limit for a wait that cannot watch output: `seconds` on the reference machine, scaled
    by this machine's slowness. Choose `seconds` as a hang guard (many times the normal time)."""
    return seconds * slowness()


class HangError(AssertionError):
    """A subprocess printed nothing for too long; the message holds the end of its output."""


def run_watched(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | pathlib.Path | None = None,
    log: pathlib.Path | None = None,
    silence_s: float = DEFAULT_SILENCE_S,
) -> subprocess.CompletedProcess[str]:
    """Runs `command` to completion, ending it only if it stops printing.

    Args:
        command: The program and its arguments.
        env: The environment (default: this process's).
        cwd: The working directory.
        log: Where to write stdout and stderr as they arrive (interleaved), e.g. for `tail -f`.
        silence_s: How long the process may print nothing, on the reference machine; scaled by
            `slowness()`.

    Returns:
        The completed process with its stdout and stderr as text (the return code unchecked).

    Raises:
        HangError: When the process printed nothing for the scaled `silence_s`; the process
            group is killed first.
    """
    limit = hang_timeout(silence_s)
    process = subprocess.Popen(
        list(command),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so that a hang is ended with every child it started
    )
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    last_output = [time.monotonic()]
    lock = threading.Lock()
    log_handle = log.open("wb") if log is not None else None

    def pump(name: str, stream: IO[bytes]) -> None:
        partial = b""  # the log gets whole lines, so that stdout and stderr do not interleave
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            with lock:
                chunks[name].append(chunk)
                last_output[0] = time.monotonic()
                if log_handle is not None:
                    lines, newline, partial = (partial + chunk).rpartition(b"\n")
                    if newline:
                        log_handle.write(lines + newline)
                        log_handle.flush()
        if log_handle is not None and partial:
            with lock:
                log_handle.write(partial)

    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=pump, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=pump, args=("stderr", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        while process.poll() is None:
            with lock:
                quiet = time.monotonic() - last_output[0]
            if quiet > limit:
                _kill_group(process)
                for reader in readers:
                    reader.join(timeout=10)
                output = b"".join(chunks["stdout"] + chunks["stderr"])
                raise HangError(
                    f"no output for {quiet:.0f} s (limit {limit:.0f} s = {silence_s:.0f} s x "
                    f"slowness {slowness():.2f}); killed {' '.join(command)}\n"
                    f"last output:\n{output.decode(errors='replace')[-6000:]}"
                )
            time.sleep(0.5)
        for reader in readers:
            reader.join()
    finally:
        if process.poll() is None:
            _kill_group(process)
        if log_handle is not None:
            log_handle.close()
    return subprocess.CompletedProcess(
        list(command),
        process.returncode,
        stdout=b"".join(chunks["stdout"]).decode(errors="replace"),
        stderr=b"".join(chunks["stderr"]).decode(errors="replace"),
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
