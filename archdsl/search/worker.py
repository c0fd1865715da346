"""A worker: join a study and run trials until the study's budget of finished trials is met.

Every way of running a search is this loop: ``archdsl search`` (one worker in the process),
``archdsl worker`` (one per device on a cluster), ``search --workers N`` (N local processes) and Ray tasks.
Workers coordinate only through the study's storage:

1. fail the trials of dead workers (Optuna's heartbeat rule, see :mod:`archdsl.search.storages.heartbeats`);
2. count the study's trials (:mod:`archdsl.search.budget`): stop when the budget is met; wait while the
   remaining slots are held by running trials (they finish, or go stale and are retried); otherwise
3. run one trial with ``study.optimize`` (Optuna starts its heartbeat thread and takes queued retries first).

SIGTERM (preemption) hands the running trial back (failed with reason ``preempted``, its parameters queued
again) and the worker returns with ``stopped="preempted"``; the CLI then exits 0.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.errors import ArchDSLError, Problem, SpecError, chain
from archdsl.search.budget import next_step, tally
from archdsl.search.faults import DeviceLost, TrialBug, TrialFault, describe
from archdsl.search.latency import require_latency
from archdsl.search.objective import Objective, OverBudget, TrialContext, Unqueued
from archdsl.search.prescreen import screen_pool
from archdsl.search.record import TrialRecord
from archdsl.search.report.progress import Progress, say_resuming
from archdsl.search.results import record_study
from archdsl.search.space.load import SearchSpace
from archdsl.search.storages.connect import StorageRef, StudyRef, default_storage_url, open_storage, parse_storage_url
from archdsl.search.storages.heartbeats import fail_stale
from archdsl.search.storages.liveness import WorkerIdentity
from archdsl.search.storages.resilient import ResilientStorage, StorageLostError
from archdsl.search.storages.retry import Retry
from archdsl.search.study import DEVICE_LOST_EXIT, SearchResult, Stopped, best_trials, open_study
from archdsl.search.tracking import require_tracking
from archdsl.train.placement import Placement, device_name, parse_device, require_device
from archdsl.train.preempt import Preempted, PreemptionGuard

__all__ = ["TrialsFailing", "WorkerOptions", "require_worker_device", "resolve_storage", "run_worker"]

T = TypeVar("T")


class TrialsFailing(ArchDSLError):
    """Several trials in a row failed with an error on this worker (exit 1)."""

    exit_code = 1


class _LastTrial:
    """Optuna callback remembering the trial this worker finished last."""

    def __init__(self) -> None:
        self.trial: FrozenTrial | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trial = trial


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker runs (the command line of ``archdsl worker``)."""

    out: Path
    """Trial directories; a filesystem every worker can read on a cluster."""
    study_name: str | None = None
    """Default: the search file's stem."""
    trials: int | None = None
    """Finished trials the study may hold (default ``budget.trials``)."""
    timeout_minutes: float | None = None
    """Stop starting trials after this long (``archdsl search`` passes ``budget.timeout_minutes``; a cluster
    worker runs until the budget is met unless given ``--timeout``)."""
    device: str | None = None
    """``cpu``, ``cuda`` or ``cuda:N`` (default: the spec's ``train.accelerator`` and ``devices``)."""
    threads: int | None = None
    """Torch intra-op threads of this process."""
    allow_import: bool = False
    new_study: bool = False
    progress: bool = True
    show_worker: bool = False
    """Tag each progress line with the worker that ran the trial."""
    label: str | None = None
    """This worker's name in the trials' ``worker`` attribute (default ``host:pid``)."""


def resolve_storage(url: str | None, out: Path) -> StorageRef:
    return parse_storage_url(url if url else default_storage_url(out))


def run_worker(space: SearchSpace, storage_url: str | None, options: WorkerOptions) -> SearchResult:
    """Run trials of the study until its budget is met (or the timeout, or SIGTERM); return the summary."""
    placement = require_worker_device(space, options.device)
    require_tracking(space)
    require_latency(space, placement)
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ref = resolve_storage(storage_url, out)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    workers = space.definition.workers
    name = options.study_name or space.name
    storage = open_storage(ref, workers)
    study = open_study(space, storage, ref, name, out, new_study=options.new_study, trials=options.trials)
    record_study(out, ref, name)
    target = options.trials or space.definition.budget.trials
    finished = tally(study.get_trials(deepcopy=False)).finished
    if finished > target:  # the budget was lowered below what the study holds: say so, run nothing
        print(
            f"study '{name}' in {ref.display} already holds {finished} finished trials, more than this run's budget "
            f"of {target} (budget.trials or --trials): nothing to run",
            file=sys.stderr,
            flush=True,
        )
    elif options.progress:
        say_resuming(study, ref.display, target)
    timeout = options.timeout_minutes
    deadline = time.monotonic() + timeout * 60 if timeout else None
    retry = Retry(workers.max_retry)
    identity = WorkerIdentity(str(placement) if placement else None, options.label)
    stopped: Stopped = "budget"
    reason = ""
    with PreemptionGuard() as guard:
        context = TrialContext(target, identity, StudyRef(ref, workers, name), retry, guard, placement)
        objective = Objective(space, out, context, allow_import=options.allow_import)
        last = _LastTrial()
        callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [last]
        if options.progress:
            callbacks.append(Progress(space, target, study, show_worker=options.show_worker, deadline=deadline))
        failures: list[TrialRecord] = []
        poll = min(5.0, float(workers.heartbeat_seconds)) if ref.has_heartbeat else 2.0
        waiting_said = False
        try:
            while True:
                guard.check()
                _guarded(storage, lambda: fail_stale(study, storage, retry))
                trials = _guarded(storage, lambda: study.get_trials(deepcopy=False))
                counts = tally(trials)
                step = next_step(counts, target)
                if step == "done":
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    stopped, reason = "timeout", timeout_reason(timeout, counts.finished, target)
                    break
                if step == "wait":
                    running = [t for t in trials if t.state == TrialState.RUNNING]
                    if not ref.has_heartbeat and not any(TrialRecord.of(t).host == identity.host for t in running):
                        # journal storage: a worker elsewhere cannot be watched from here
                        stopped, reason = "left", "the remaining trials run on workers this one cannot watch"
                        break
                    if not waiting_said and options.progress:
                        _say_waiting(running, workers.grace_seconds, ref.has_heartbeat)
                        waiting_said = True
                    guard.wait(poll)
                    continue
                waiting_said = False
                # a prescreened search trains what its pools queued; a sampled trial only when a pool found
                # nothing feasible (refused and counted, so a search of an infeasible space ends)
                queued_only = space.definition.prescreen is not None
                if queued_only and not counts.waiting:
                    screen = partial(
                        screen_pool,
                        study,
                        space,
                        counts,
                        target,
                        guard,
                        identity=identity,
                        allow_import=options.allow_import,
                    )
                    pool = _guarded(
                        storage, partial(screen, device=_device(space, placement), progress=options.progress)
                    )
                    if pool is None or pool.scored:
                        continue  # count again: the queue holds the pool's best (or other workers took the slots)
                    queued_only = False  # not one proposal was feasible
                try:
                    _guarded(
                        storage,
                        partial(
                            study.optimize,
                            partial(objective, queued_only=queued_only),
                            n_trials=1,
                            catch=(TrialFault,),
                            callbacks=callbacks,
                            gc_after_trial=True,
                        ),
                    )
                    # Optuna's collection after the trial freed its cycles; what survives is the long-lived
                    # state (modules, registries, the study): moved out of the collector's reach, the next
                    # trial's full collection scans only that trial's objects (~175 ms -> a few ms per trial)
                    gc.freeze()
                except (OverBudget, Unqueued):  # other workers took the last slot or queued trial: count again
                    continue
                except optuna.exceptions.UpdateFinishedTrialError as err:
                    # This worker's trial was failed by another: its heartbeat went stale while the storage
                    # was out of reach. Its retry runs elsewhere; carry on.
                    print(f"a trial was finished by another worker while it ran here: {err}", file=sys.stderr)
                    continue
                _count_failure(last.trial, failures, workers.max_failures_in_a_row)
        except TrialsFailing as err:
            stopped, reason = "failures", str(err.problems[0].message)
        except TrialBug as bug:
            stopped, reason = "bug", _say_bug(bug)
        except DeviceLost as lost:
            stopped = "device"
            reason = (
                f"trial {lost.number} hit a device fault ({describe(lost.error)}) that may leave this process "
                f"unable to use the device; its parameters are queued again: start the worker again (exit "
                f"{DEVICE_LOST_EXIT}, which the SLURM script and the Kubernetes Job restart)"
            )
        except Preempted as stop:
            # Ctrl-C (the command exits 130) or SIGTERM (exit 0), once the running trial is handed back
            stopped = "interrupted" if stop.reason == "interrupted" else "preempted"
            reason = "Ctrl-C" if stopped == "interrupted" else "SIGTERM: the running trial is queued again"
    return SearchResult(
        name,
        ref.display,
        space.objective_names,
        best_trials(study),
        tally(study.get_trials(deepcopy=False)),
        stopped,
        reason,
    )


def require_worker_device(space: SearchSpace, device: str | None) -> Placement | None:
    """The ``--device`` choice, refused (before any study is touched) where it, or the base spec's
    ``train.accelerator``, asks for CUDA that torch here cannot use."""
    placement = parse_device(device) if device else None
    train = space.base_doc.data.get("train") or {}
    try:
        require_device(placement, str(train.get("accelerator", "auto")))
    except SpecError as err:
        raise err.located(space.base_doc.locate) from None
    return placement


def _device(space: SearchSpace, placement: Placement | None) -> str:
    """Where this worker's models run (``--device``, else the base spec's ``train.accelerator``)."""
    return device_name(placement, str((space.base_doc.data.get("train") or {}).get("accelerator", "auto")))


def timeout_reason(minutes: float | None, finished: int, target: int) -> str:
    """Why a search stopped at its clock, and what to change."""
    return (
        f"the timeout of {minutes:g} min was reached after {finished} of {target} trials (budget.timeout_minutes "
        "or --timeout; --trials alone runs the count asked for)"
    )


def _count_failure(trial: FrozenTrial | None, failures: list[TrialRecord], limit: int) -> None:
    """Keep the run of consecutive failed trials; stop the worker when it reaches ``limit``
    (``workers.max_failures_in_a_row``)."""
    record = TrialRecord.of(trial) if trial is not None else None
    if record is None or not record.failed:
        failures.clear()
        return
    failures.append(record)
    if len(failures) >= limit:
        numbers = ", ".join(str(t.number) for t in failures)
        raise TrialsFailing(
            Problem(
                "",
                f"{len(failures)} trials in a row failed on this worker (trials {numbers}; "
                f"workers.max_failures_in_a_row is {limit}); the last: {failures[-1].error}",
            )
        )


def _say_bug(bug: TrialBug) -> str:
    """Print the bug's traceback (stderr); return why the search stopped."""
    err = bug.error
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    return (
        f"trial {bug.number} raised {describe(err)}, which is no training fault (not out of "
        "memory, diverging or a device error) but a bug in archdsl or in code the spec imports; its traceback is "
        "above. Its parameters are queued again (workers.max_retry) for the run after the fix"
    )


def _guarded(storage: optuna.storages.BaseStorage, call: Callable[[], T]) -> T:
    """Run ``call``; a lost storage connection surfaces as its one-line :class:`StorageLostError` even when
    Optuna reports it as something else while handling it (e.g. ``UnboundLocalError``)."""
    try:
        return call()
    except optuna.exceptions.UpdateFinishedTrialError:
        raise
    except Exception as err:
        lost = _lost_in(err) or (storage.lost if isinstance(storage, ResilientStorage) else None)
        if lost is not None:
            raise lost from None
        raise


def _lost_in(err: BaseException) -> StorageLostError | None:
    return next((e for e in chain(err) if isinstance(e, StorageLostError)), None)


def _say_waiting(running: list[FrozenTrial], grace: int, heartbeat: bool) -> None:
    where = ", ".join(f"#{t.number} on {TrialRecord.of(t).worker or '?'}" for t in running)
    rule = (
        f"a trial whose worker died is failed after workers.grace_seconds={grace} s without a heartbeat and retried"
        if heartbeat
        else "a trial whose process on this host is gone is failed and retried"
    )
    print(f"waiting for the last running trials ({where}); {rule}", file=sys.stderr, flush=True)
