"""A real single-node SLURM cluster (munged, slurmctld, slurmd) in a temporary folder."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


def missing_daemons() -> list[str]:
    """The SLURM / munge programs this machine lacks."""
    return [name for name in DAEMONS if shutil.which(name) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: pathlib.Path, host: str) -> str:
    # Settings that work as root in a container without cgroups or accounting.
    return f"""ClusterName=coralbay-test
SlurmctldHost={host}
AuthType=auth/munge
AuthInfo=socket={folder / "munge.sock"}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
SlurmctldLogFile={folder / "slurmctld.log"}
SlurmdLogFile={folder / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
NodeName={host} CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


@contextlib.contextmanager
def slurm_cluster() -> Iterator[dict[str, str]]:
    """Starts the daemons; yields the environment that points SLURM's clients at them.

    The daemons are stopped afterwards by the PIDs they wrote.

    Raises:
        RuntimeError: When the cluster does not come up within a minute (with its logs).
    """
    # Short path: a Unix socket name may not exceed 107 bytes.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="slurm-"))
    for name in ("state", "spool"):
        (folder / name).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    config = folder / "slurm.conf"
    config.write_text(_config(folder, socket.gethostname()))
    environment = {**os.environ, "SLURM_CONF": str(config)}
    pid_files = [folder / "slurmd.pid", folder / "slurmctld.pid", folder / "munged.pid"]
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={folder / 'munge.sock'}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munge.seed'}",
            ],
            check=True,
        )
        subprocess.run(["slurmctld", "-f", str(config)], check=True, env=environment)
        subprocess.run(["slurmd", "-f", str(config)], check=True, env=environment)
        _wait_until_idle(environment, folder)
        yield {"SLURM_CONF": str(config)}
    finally:
        for pid_file in pid_files:
            _stop(pid_file)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_idle(environment: dict[str, str], folder: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=environment
        )
        if result.returncode == 0 and result.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    logs = "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
        for path in sorted(folder.glob("*.log"))
    )
    raise RuntimeError(f"the test SLURM cluster did not come up within 60 s\n{logs}")


def _stop(pid_file: pathlib.Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
