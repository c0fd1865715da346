"""A SLURM job array: one array task per node, one ``archdsl worker`` per GPU, requeued on preemption.

Preemption: SLURM sends SIGTERM to every job step; each worker hands its trial back (failed ``preempted``,
parameters queued again) and exits 0 within SLURM's ``KillWait``; ``--requeue`` puts the array task back in
the queue and its workers rejoin the study when it starts again. Near the time limit SLURM sends SIGUSR1
(``--signal``); the script then stops its workers the same way and requeues itself. Once the study's
budget is met, a (re)started task's workers find nothing to do and exit 0.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from archdsl.errors import UsageError
from archdsl.launch.common import Launch

__all__ = ["SlurmOptions", "slurm_script"]


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int
    gpus_per_node: int
    cpus_per_gpu: int = 4
    time: str | None = None
    """``--time`` of each array task (e.g. ``24:00:00``); the script requeues itself before it runs out."""
    partition: str | None = None
    account: str | None = None
    setup: tuple[str, ...] = ()
    """Shell lines run before the workers start (``module load ...``, ``source venv/bin/activate``)."""
    grace_seconds: int = 120
    """How long before the time limit the workers are asked to stop."""


def slurm_script(launch: Launch, o: SlurmOptions) -> str:
    if o.nodes < 1 or o.gpus_per_node < 1:
        raise UsageError.option(
            "--nodes", f"--nodes and --gpus-per-node must be at least 1, got {o.nodes} and {o.gpus_per_node}"
        )
    g = launch.gpus_per_worker
    if o.gpus_per_node % g:
        raise UsageError.option(
            "--gpus-per-node",
            f"the base spec trains each trial on train.devices={g} GPUs, which does not divide "
            f"--gpus-per-node {o.gpus_per_node}",
        )
    per_node = o.gpus_per_node // g
    name = f"archdsl-{launch.study}"
    lines = [
        "#!/bin/bash",
        f"# archdsl search '{launch.study}' on SLURM: {o.nodes} node(s) x {per_node} worker(s), "
        f"{g} GPU(s) per worker, one study in {launch.storage}.",
        "# Submit with the database password in the environment (it is never written here):",
        "#   export ARCHDSL_STORAGE_PASSWORD=...   # or a ~/.pgpass entry",
        "#   sbatch THIS_FILE",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --array=0-{o.nodes - 1}",
        "#SBATCH --nodes=1",
        f"#SBATCH --ntasks-per-node={per_node}",
        f"#SBATCH --gpus-per-task={g}",
        f"#SBATCH --cpus-per-task={o.cpus_per_gpu * g}",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:USR1@{o.grace_seconds}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={launch.out}/logs/slurm-%A_%a.out",
    ]
    lines += [f"#SBATCH --time={o.time}"] if o.time else []
    lines += [f"#SBATCH --partition={o.partition}"] if o.partition else []
    lines += [f"#SBATCH --account={o.account}"] if o.account else []
    lines += ["", "set -euo pipefail", *o.setup]
    lines += [
        f"mkdir -p {shlex.quote(launch.out)}/logs",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        "",
        "# Time limit near: SIGTERM to the workers (srun passes it on), wait for them to hand their trials",
        "# back, then put this array task back in the queue.",
        "requeue() {",
        '  kill -TERM "$workers" 2>/dev/null || true',
        '  wait "$workers" || true',
        '  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "}",
        "trap requeue USR1",
        "",
        f"srun --kill-on-bad-exit=0 {launch.worker_command()} &",
        "workers=$!",
        'while kill -0 "$workers" 2>/dev/null; do wait "$workers" || true; done',
        "",
    ]
    return "\n".join(lines)
