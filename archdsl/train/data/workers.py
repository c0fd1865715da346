"""How many DataLoader worker processes a data module starts: ``num_workers: auto`` or a number.

``auto`` is this process's share of the CPUs: ``OMP_NUM_THREADS`` where a launcher set it (``archdsl search
--workers N`` gives each local worker ``cores // N``; the SLURM script, the Kubernetes manifests, Ray tasks and
Lightning's DDP launcher set it too, per process), otherwise every CPU the process may run on
(``os.sched_getaffinity``). It is never more than the loader has batches, so a tiny split starts one worker.
"""

from __future__ import annotations

import math
import os
from typing import Literal

__all__ = ["cpu_share", "loader_workers"]

Workers = int | Literal["auto"]


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_share() -> int:
    """The CPUs this process may use: ``OMP_NUM_THREADS`` when set to a positive integer, else its affinity."""
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        return min(int(threads), _affinity())
    return _affinity()


def loader_workers(setting: Workers, items: int, batch_size: int) -> int:
    """The worker processes of a loader over ``items`` samples: ``setting`` when it is a number, else
    :func:`cpu_share` capped at the loader's batch count (at least one worker)."""
    if setting != "auto":
        return int(setting)
    batches = max(1, math.ceil(items / max(1, batch_size)))
    return max(1, min(cpu_share(), batches))
