"""``archdsl search``: one worker in this process, N local worker processes, or workers as Ray tasks."""

from __future__ import annotations

from pathlib import Path

from archdsl.search import SearchResult, WorkerOptions, run_worker
from archdsl.search.space import SearchSpace

__all__ = ["run_search", "search_timeout"]


def search_timeout(space: SearchSpace, trials: int | None, timeout_minutes: float | None) -> float | None:
    """Minutes after which no trial starts: ``--timeout``; else none when ``--trials`` was given (the count
    asked for on the command line wins over the file's clock); else the file's ``budget.timeout_minutes``."""
    if timeout_minutes is not None:
        return timeout_minutes or None
    if trials is not None:
        return None
    return space.definition.budget.timeout_minutes


def run_search(
    space: SearchSpace,
    out: Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    timeout_minutes: float | None = None,
    new_study: bool = False,
    allow_import: bool = False,
    progress: bool = True,
    workers: int | None = None,
    device: str | None = None,
    ray: str | None = None,
) -> SearchResult:
    """Run (or resume) the search until the study holds ``trials`` finished trials; returns the summary.

    ``workers > 1`` runs that many local processes on one study (threads split between them, one GPU each
    when several are visible); ``ray`` (an address, ``auto`` or ``local``) runs the workers as Ray tasks
    (``workers`` of them; default one per GPU of the cluster, or one).
    """
    options = WorkerOptions(
        out=out,
        study_name=study_name,
        trials=trials,
        timeout_minutes=search_timeout(space, trials, timeout_minutes),
        device=device,
        allow_import=allow_import,
        new_study=new_study,
        progress=progress,
    )
    if ray is not None:
        from archdsl.launch.ray_tasks import run_ray

        return run_ray(space, storage, options, address=ray, workers=workers)
    if workers is not None and workers > 1:
        from archdsl.launch.local import run_local

        return run_local(space, storage, options, workers=workers)
    return run_worker(space, storage, options)
