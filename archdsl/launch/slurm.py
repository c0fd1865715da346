"""A SLURM job array: one array task per node, one ``archdsl worker`` per GPU (or per ``--cpus-per-worker`` CPUs
on CPU nodes), requeued on preemption.

Preemption: SLURM sends SIGTERM to every job step; each worker hands its trial back (failed ``preempted``,
parameters queued again) and exits 0 within SLURM's ``KillWait``; ``--requeue`` puts the array task back in
the queue and its workers rejoin the study when it starts again. Near the time limit SLURM sends SIGUSR1 to the
batch script (``--signal=B:USR1@N``); the script passes SIGTERM to the workers themselves, the tasks of its step
(``scancel --signal=TERM JOB.0``; signalling ``srun`` instead makes it kill its tasks within a quarter second),
waits for them to hand back, and requeues itself. A worker that left after a device fault (exit 75) is requeued
too, on a fresh process. Otherwise the script exits with ``srun``'s code, so SLURM records a failed worker as a
failed job. Once the study's budget is met, a (re)started task's workers find nothing to do and exit 0.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from archdsl.errors import UsageError
from archdsl.launch.common import Launch
from archdsl.search import DEVICE_LOST_EXIT

__all__ = ["SlurmOptions", "slurm_script", "workers_per_task"]


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int
    gpus_per_node: int
    """0: CPU nodes, ``workers_per_node`` workers of ``cpus_per_worker`` CPUs each."""
    cpus_per_gpu: int = 4
    cpus_per_worker: int | None = None
    """CPUs of each worker (default: ``cpus_per_gpu`` times its GPUs)."""
    workers_per_node: int = 1
    """Workers per CPU node (GPU nodes run one per ``train.devices`` GPUs)."""
    time: str | None = None
    """``--time`` of each array task (e.g. ``24:00:00``); the script requeues itself before it runs out."""
    partition: str | None = None
    account: str | None = None
    setup: tuple[str, ...] = ()
    """Shell lines run before the workers start (``module load ...``, ``source venv/bin/activate``)."""
    grace_seconds: int = 120
    """How long before the time limit the workers are asked to stop."""


def workers_per_task(launch: Launch, o: SlurmOptions) -> int:
    """``archdsl worker`` processes per array task: one per ``train.devices`` GPUs, or ``--workers-per-node``
    on CPU nodes (``--nodes`` times this is the study's worker count)."""
    return o.gpus_per_node // launch.gpus_per_worker if o.gpus_per_node else o.workers_per_node


def slurm_script(launch: Launch, o: SlurmOptions) -> str:
    if o.nodes < 1 or o.gpus_per_node < 0:
        raise UsageError.option(
            "--nodes", f"--nodes must be at least 1 and --gpus-per-node at least 0, got {o.nodes} and {o.gpus_per_node}"
        )
    g = launch.gpus_per_worker
    if o.gpus_per_node and o.gpus_per_node % g:
        raise UsageError.option(
            "--gpus-per-node",
            f"the base spec trains each trial on train.devices={g} GPUs, which does not divide "
            f"--gpus-per-node {o.gpus_per_node}",
        )
    per_node = workers_per_task(launch, o)
    cpus = o.cpus_per_worker or o.cpus_per_gpu * (g if o.gpus_per_node else 1)
    device = "cuda" if o.gpus_per_node else "cpu"
    name = f"archdsl-{launch.study}"
    hardware = f"{g} GPU(s) per worker" if o.gpus_per_node else f"CPU nodes, {cpus} CPU(s) per worker"
    lines = [
        "#!/bin/bash",
        f"# archdsl search '{launch.study}' on SLURM: {o.nodes} node(s) x {per_node} worker(s), "
        f"{hardware}, one study in {launch.storage}.",
        "# Submit with the database password in the environment (it is never written here):",
        "#   export ARCHDSL_STORAGE_PASSWORD=...   # or a ~/.pgpass entry",
        "#   sbatch THIS_FILE",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --array=0-{o.nodes - 1}",
        "#SBATCH --nodes=1",
        f"#SBATCH --ntasks-per-node={per_node}",
        *([f"#SBATCH --gpus-per-task={g}"] if o.gpus_per_node else []),
        f"#SBATCH --cpus-per-task={cpus}",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:USR1@{o.grace_seconds}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={launch.out}/logs/slurm-%A_%a.out",
    ]
    lines += [f"#SBATCH --time={o.time}"] if o.time else []
    lines += [f"#SBATCH --partition={o.partition}"] if o.partition else []
    lines += [f"#SBATCH --account={o.account}"] if o.account else []
    lines += ["", "set -uo pipefail", *o.setup]
    lines += [
        f"mkdir -p {shlex.quote(launch.out)}/logs",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        "# srun of Slurm 22.05-23.02 does not inherit --cpus-per-task: without this each worker gets one core",
        'export SRUN_CPUS_PER_TASK="${SLURM_CPUS_PER_TASK:-1}"',
        "",
        "# Time limit near: SIGTERM to the workers themselves (the tasks of step 0), which hand their trials",
        "# back and exit 0; this array task is put back in the queue once they have.",
        "requeued=0",
        "requeue() {",
        "  requeued=1",
        '  scancel --signal=TERM "${SLURM_JOB_ID}.0" 2>/dev/null || true',
        "}",
        "trap requeue USR1",
        "",
        f"srun --kill-on-bad-exit=0 {launch.worker_command(device)} &",
        "workers=$!",
        "status=0",
        "while true; do",
        '  wait "$workers"; status=$?',
        '  kill -0 "$workers" 2>/dev/null || break  # else a trap ended the wait: srun still runs',
        "done",
        f'if [ "$requeued" = 1 ] || [ "$status" = {DEVICE_LOST_EXIT} ]; then',
        '  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "  exit 0",
        "fi",
        'exit "$status"  # a worker that failed fails the job',
        "",
    ]
    return "\n".join(lines)
