"""What every launcher needs: the worker command line, with no password in it."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import UsageError

if TYPE_CHECKING:
    from archdsl.search.space import SearchSpace

__all__ = ["Launch", "devices_per_trial", "launch_for"]


@dataclass(frozen=True)
class Launch:
    """One search to run on a cluster."""

    search: str
    """The search definition, as the workers will see it."""
    storage: str
    """The study's storage URL, without a password (workers read ``ARCHDSL_STORAGE_PASSWORD``)."""
    study: str
    out: str
    """The workers' ``--out``: a directory on a filesystem every node can read."""
    gpus_per_worker: int
    """``train.devices`` of the base spec: a multi-GPU trial's worker owns that many GPUs."""
    trials: int | None = None
    allow_import: bool = False
    """Pass ``--allow-import`` (a ``custom`` data module) to every worker."""

    def worker_argv(self, search: str | None = None, out: str | None = None, device: str = "cuda") -> list[str]:
        argv = [
            "archdsl",
            "worker",
            search or self.search,
            "--storage",
            self.storage,
            "--study",
            self.study,
            "--out",
            out or self.out,
            "--device",
            device,
        ]
        if self.trials:
            argv += ["--trials", str(self.trials)]
        if self.allow_import:
            argv.append("--allow-import")
        return argv

    def worker_command(self, device: str = "cuda") -> str:
        return shlex.join(self.worker_argv(device=device))


def devices_per_trial(space: SearchSpace) -> int:
    """The base spec's ``train.devices`` (with the search file's ``set:``) when a number, else 1: the devices,
    and DDP processes, one trial of a worker takes."""
    devices = (space.base_doc.data.get("train") or {}).get("devices", 1)
    return devices if isinstance(devices, int) and devices > 0 else 1


def launch_for(
    search_path: str,
    storage: str,
    study: str | None,
    out: str | None,
    trials: int | None,
    *,
    allow_import: bool = False,
) -> Launch:
    """Load the search (it must be valid before anything is submitted) and strip the storage password."""
    from archdsl.search.space import load_search
    from archdsl.search.storages import parse_storage_url

    space = load_search(search_path)
    ref = parse_storage_url(storage)
    if ref.kind == "sqlite":
        raise UsageError.option(
            "--storage",
            "a cluster needs a storage every node reaches: postgresql://USER@HOST/DB or mysql://USER@HOST/DB "
            f"(or journal:PATH on one shared filesystem), got '{ref.display}'",
        )
    url, _password = ref.split_password()
    if url != ref.url:  # the URL carried a password
        print(
            "note: the password in --storage is not written into the launch file; the workers read "
            "ARCHDSL_STORAGE_PASSWORD",
            file=sys.stderr,
        )
    gpus = devices_per_trial(space)
    directory = str(Path(out).resolve()) if out else str((Path("runs") / "search" / space.name).resolve())
    return Launch(str(Path(search_path).resolve()), url, study or space.name, directory, gpus, trials, allow_import)
