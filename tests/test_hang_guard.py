"""The tests' hang guard: silence ends a process, steady output never does, whatever the total."""

from __future__ import annotations

import pathlib
import sys
import time

import pytest

from tests import hang_guard

# Prints a line every 0.1 s for `argv[1]` lines, then goes quiet for `argv[2]` seconds.
_TALKER = (
    "import sys, time\n"
    "for i in range(int(sys.argv[1])):\n"
    "    print('line', i, flush=True); print('err', i, file=sys.stderr, flush=True)\n"
    "    time.sleep(0.2)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def test_steady_output_runs_past_the_silence_limit(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "talker.log"
    # 20 lines over 2 s: twice the limit in total, never silent for long.
    result = hang_guard.run_watched(
        [sys.executable, "-c", _TALKER, "20", "0"],
        log=log,
        silence_s=1.0 / hang_guard.slowness(),
    )

    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"line {i}" for i in range(20)]
    assert result.stderr.splitlines() == [f"err {i}" for i in range(20)]
    # The log holds both streams in whole lines.
    assert sorted(log.read_text().splitlines()) == sorted(
        [f"line {i}" for i in range(20)] + [f"err {i}" for i in range(20)]
    )


def test_a_silent_process_is_killed_with_its_output_in_the_error(tmp_path: pathlib.Path) -> None:
    pid_file = tmp_path / "child.pid"
    # The child starts a grandchild that would outlive it: the whole group must go.
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('about to hang', flush=True)\n"
        "time.sleep(600)\n"
    )

    with pytest.raises(hang_guard.HangError, match="no output for") as raised:
        hang_guard.run_watched([sys.executable, "-c", code], silence_s=1.5 / hang_guard.slowness())

    assert "about to hang" in str(raised.value)
    # SIGKILL lands asynchronously: give the grandchild a moment to die (a zombie until reaped).
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _state(grandchild) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(grandchild) in ("gone", "Z")


def _state(pid: int) -> str:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


def test_slowness_can_be_set_and_scales_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORALBAY_TEST_SLOWNESS", "3")
    hang_guard.slowness.cache_clear()
    try:
        assert hang_guard.slowness() == 3.0
        assert hang_guard.hang_timeout(100) == 300.0
    finally:
        monkeypatch.delenv("CORALBAY_TEST_SLOWNESS")
        hang_guard.slowness.cache_clear()
    assert hang_guard.slowness() >= 1.0
