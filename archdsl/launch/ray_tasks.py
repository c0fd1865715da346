"""``archdsl search SEARCH.yaml --ray ADDRESS|auto|local``: the workers as Ray tasks on one study.

Ray places the tasks (one GPU each, or ``train.devices`` GPUs for multi-GPU trials, when the cluster has
GPUs) and restarts a task whose process or node dies (``max_retries``); the study in the storage stays the
single source of truth, so a Ray cluster, KubeRay included, hosts the search the same way SLURM does.
The study is created here before any task starts. The password reaches the tasks through their
``runtime_env`` environment, never as an argument. Ray is the optional extra ``archdsl[ray]``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchDSLError, Problem, UsageError
from archdsl.launch.common import devices_per_trial
from archdsl.search import (
    SearchResult,
    WorkerOptions,
    best_trials,
    open_study,
    record_study,
    resolve_storage,
    run_worker,
    tally,
    timeout_reason,
)
from archdsl.search.report import Progress
from archdsl.search.space import SearchSpace
from archdsl.search.storages import PASSWORD_ENV, check_connection_budget, open_storage
from archdsl.train.preempt import STARTUP

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["RayTaskFailed", "run_ray", "worker_tasks"]

TASK_RETRIES = 3
"""Times Ray starts a worker task again after its process or node died."""


class RayTaskFailed(ArchDSLError):
    """A worker task raised (exit 1)."""

    exit_code = 1


def _worker_task(space: SearchSpace, url: str, options: WorkerOptions, index: int) -> dict[str, Any]:
    """Runs inside a Ray worker process: one archdsl worker on the GPUs Ray assigned."""
    import ray

    gpus = ray.get_gpu_ids()
    device = "cuda" if gpus else (options.device or "cpu")
    threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    mine = replace(options, device=device, threads=threads, progress=False, label=f"ray-{index}")
    result = run_worker(space, url, mine)
    return {**result.to_json(), "reason": result.reason}


def run_ray(
    space: SearchSpace, storage_url: str | None, options: WorkerOptions, *, address: str, workers: int | None
) -> SearchResult:
    STARTUP.release()  # Ray's tasks stop on Python's own Ctrl-C: a recorded one ends the search here
    try:
        import ray
    except ImportError:
        raise UsageError.option("--ray", "needs Ray: pip install 'archdsl[ray]'") from None
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = replace(options, out=out)
    ref = resolve_storage(storage_url, out)
    name = options.study_name or space.name
    storage = open_storage(ref, space.definition.workers)
    study = open_study(space, storage, ref, name, out, new_study=options.new_study, trials=options.trials)
    record_study(out, ref, name)
    options = replace(options, study_name=name, new_study=False)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    try:
        if ref.kind == "sqlite" and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
            raise UsageError.option(
                "--storage",
                f"the Ray cluster has several nodes, which cannot share the SQLite file {ref.path}; "
                "give --storage postgresql://USER@HOST/DB",
            )
        return _run(ray, space, ref, name, options, workers, study, storage)
    finally:
        if started_here:
            ray.shutdown()


def worker_tasks(resources: Mapping[str, float], per_trial: int, workers: int | None) -> int:
    """Worker tasks started on a Ray cluster of ``resources``: ``--workers``, else one per ``per_trial`` GPUs
    (one on a cluster without GPUs)."""
    gpus = int(resources.get("GPU", 0))
    return workers or (max(1, gpus // per_trial) if gpus else 1)


def _run(
    ray: Any,
    space: SearchSpace,
    ref: Any,
    name: str,
    options: WorkerOptions,
    workers: int | None,
    study: Any,
    storage: BaseStorage,
) -> SearchResult:
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    per_trial = devices_per_trial(space)
    n = worker_tasks(resources, per_trial, workers)
    if ref.kind == "postgresql":  # before any task starts: every task must be able to connect
        option = "--workers" if workers else "--ray"  # else the cluster's GPUs set the count
        check_connection_budget(storage, n, option=option, trial_processes=per_trial)
    threads = max(1, cpus // n)
    url, password = ref.split_password()
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if password:
        env[PASSWORD_ENV] = password
    # max_calls=1: a fresh process per task, so a worker that left after a device fault is never reused
    task = ray.remote(max_calls=1)(_worker_task).options(
        num_cpus=threads,
        num_gpus=per_trial if gpus else 0,
        max_retries=TASK_RETRIES,
        runtime_env={"env_vars": env},
    )
    target = options.trials or space.definition.budget.trials
    print(
        f"ray: {n} worker tasks ({threads} CPUs{f', {per_trial} GPU' if gpus else ''} each) on study {name}",
        file=sys.stderr,
    )
    pending = [task.remote(space, url, options, i) for i in range(n)]
    progress = Progress(space, target, study, show_worker=True) if options.progress else None
    failures: list[str] = []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref_done in done:
                try:
                    summary = ray.get(ref_done)
                except Exception as err:  # the task's traceback stays in Ray's logs; one line here
                    failures.append(str(err).strip().splitlines()[-1][:300])
                    continue
                if summary["stopped"] in ("failures", "bug"):  # its trials kept failing, or hit a bug
                    failures.append(f"stopped ({summary['stopped']}): {summary['reason'][:300]}")
                elif summary["stopped"] == "device":  # it left a process a device fault may have poisoned
                    pending.append(task.remote(space, url, options, n + len(failures) + len(pending)))
            if progress:
                progress.update(study)
    except KeyboardInterrupt:
        for p in pending:
            ray.cancel(p)  # a KeyboardInterrupt in the task: it hands its trial back
        ray.wait(pending, num_returns=len(pending), timeout=90)
        raise
    counts = tally(study.get_trials(deepcopy=False))
    if failures and counts.finished < target:
        raise RayTaskFailed([Problem("", f"ray worker task failed: {f}") for f in failures])
    if counts.finished >= target:
        return SearchResult(name, ref.display, space.objective_names, best_trials(study), counts)
    reason = timeout_reason(options.timeout_minutes, counts.finished, target)
    return SearchResult(name, ref.display, space.objective_names, best_trials(study), counts, "timeout", reason)
