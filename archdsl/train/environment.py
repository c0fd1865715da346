"""Each run trains its own trial, whatever scheduler started the process.

Under ``srun`` (every worker a SLURM launcher starts) Lightning reads rank, world size and local rank from
``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``, derives ``MASTER_PORT`` from ``SLURM_JOB_ID`` (the same for
every worker of the node), and decides at import which process is rank zero from ``SLURM_PROCID``: a two-device
trial of task 2 of a 4-task step died with ``IndexError`` (``parallel_devices[local_rank]``), and 7 of 8 workers of
a node never wrote ``metrics.csv``. A worker's processes are a trial's own: this module gives Lightning an explicit
environment (ranks from the spawn, a free port per trial on this host) and makes the process rank zero of it.
"""

from __future__ import annotations

import os

from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

__all__ = ["trial_environment"]


def trial_environment(processes: int) -> LightningEnvironment:
    """The cluster environment of one trial run from this process: it is rank zero; with several processes
    (``ddp_spawn``) they meet on this host at a port free now (``MASTER_ADDR``, ``MASTER_PORT``)."""
    rank_zero_only.rank = utils_rank_zero_only.rank = 0  # type: ignore[attr-defined]
    if processes > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(find_free_network_port())
    return LightningEnvironment()
