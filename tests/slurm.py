"""A real one-node SLURM for the tests: munged, slurmctld and slurmd of Debian's ``slurm-wlm``, all state in a
temporary directory, ports chosen free (two pytest-xdist workers may each run one), stopped by their PIDs.

The settings are those that work in these containers (no systemd, no cgroups): see the project's
``shared/reference/slurm-local.md``. Fake GPUs (``/dev/null`` and ``/dev/zero`` as the devices) make
``--gpus-per-task`` directives acceptable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DAEMONS", "Slurm", "missing"]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo")


def missing() -> list[str]:
    """The SLURM and munge programs this machine lacks (``apt-get install slurm-wlm munge`` brings them)."""
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [name for name in DAEMONS if shutil.which(name, path=paths) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _program(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


@dataclass
class Slurm:
    """One cluster; ``env`` is what a command needs to reach it (``SLURM_CONF``)."""

    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    pids: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_program(argv[0]), *argv[1:]], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def start(self) -> None:
        r = self.root
        for d in ("state", "spool", "log", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (r / "munge").chmod(0o700)
        munge_socket = r / "munge" / "munge.socket"
        subprocess.run(
            [
                _program("munged"),
                "--force",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--pid-file={r / 'munge' / 'munged.pid'}",
                f"--log-file={r / 'log' / 'munged.log'}",
                f"--seed-file={r / 'munge' / 'munged.seed'}",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.pids.append(r / "munge" / "munged.pid")
        cpus = os.cpu_count() or 1
        (r / "gres.conf").write_text(
            "AutoDetect=off\n"
            + "".join(f"NodeName={self.host} Name=gpu File={d}\n" for d in ("/dev/null", "/dev/zero"))
        )
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=archdsltest",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={munge_socket},cred_expire=10",
                    "CredType=cred/munge",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/filetxt",
                    f"JobCompLoc={r / 'log' / 'jobcomp.txt'}",
                    "MpiDefault=none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SchedulerType=sched/backfill",
                    "ReturnToService=2",
                    "GresTypes=gpu",
                    "KillWait=30",
                    "MinJobAge=300",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} Sockets=1 CoresPerSocket={cpus} "
                    "ThreadsPerCore=1 RealMemory=8000 Gres=gpu:2 State=UNKNOWN",
                    f"PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        subprocess.run([_program("slurmctld"), "-i"], env=self.env, check=True, capture_output=True, timeout=30)
        self.pids.append(r / "slurmctld.pid")
        subprocess.run([_program("slurmd")], env=self.env, check=True, capture_output=True, timeout=30)
        self.pids.append(r / "slurmd.pid")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return
            if not all(self._alive(p) for p in self.pids):
                break
            time.sleep(0.5)
        logs = "".join(
            (r / "log" / f).read_text()[-1500:] for f in ("slurmctld.log", "slurmd.log") if (r / "log" / f).exists()
        )
        raise RuntimeError(f"SLURM did not come up (sinfo: {state!r}):\n{logs}")

    @staticmethod
    def _alive(pidfile: Path) -> bool:
        try:
            os.kill(int(pidfile.read_text().split()[0]), 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> None:
        self.run("scancel", "--full", "--partition=test", check=False)
        for pidfile in reversed(self.pids):  # by PID, never by name: another cluster may run beside this one
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)

    def submit(self, script: Path, *options: str) -> str:
        out = self.run("sbatch", "--parsable", *options, str(script)).stdout.strip()
        return out.split(";")[0]

    def job(self, job: str) -> dict[str, str]:
        """``scontrol show job`` as ``key -> value`` (jobs are kept 300 s after they end)."""
        text = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
        return dict(part.split("=", 1) for part in text.split() if "=" in part)

    def wait(self, job: str, states: tuple[str, ...], timeout: float) -> dict[str, str]:
        """Poll until the job's state is one of ``states``; return its record."""
        deadline = time.monotonic() + timeout
        record: dict[str, str] = {}
        while time.monotonic() < deadline:
            record = self.job(job)
            if record.get("JobState") in states:
                return record
            time.sleep(0.5)
        raise TimeoutError(f"job {job} not in {states} after {timeout} s: {record}")
