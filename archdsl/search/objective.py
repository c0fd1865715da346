"""One trial: claim a budget slot -> resolve -> plan -> reject early (no weights) -> build -> train -> objectives."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from archdsl.errors import ArchDSLError
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.budget import admits
from archdsl.search.constraints import constrain
from archdsl.search.faults import STICKY, DeviceLost, TrialBug, TrialFault, describe, fault_of
from archdsl.search.latency import measures_latency, time_trial
from archdsl.search.record import TrialWriter, was_queued
from archdsl.search.resume import Start, start_of
from archdsl.search.space.definition import PROXY_METRIC, PROXY_NAMES
from archdsl.search.space.load import SearchSpace
from archdsl.search.space.resolution import resolve
from archdsl.search.storages.connect import StudyRef
from archdsl.search.storages.liveness import WorkerIdentity
from archdsl.search.storages.retry import Retry
from archdsl.spec.load import spec_to_data
from archdsl.spec.model import ModelSpec
from archdsl.train.placement import Placement, device_name, spec_trainer_args
from archdsl.train.preempt import Preempted, PreemptionGuard

if TYPE_CHECKING:
    from archdsl.compiler.latency import Timing

__all__ = ["UNTRAINED", "Objective", "OverBudget", "TrialContext", "Unqueued", "reject"]

UNTRAINED = frozenset({"params", "flops", "latency_ms", *(f"{PROXY_METRIC}{name}" for name in PROXY_NAMES)})
"""Objectives known without training: a search of only these trains nothing."""


def reject(trial: optuna.Trial, reason: str, started: float) -> optuna.TrialPruned:
    """Record why the trial was refused before training; the caller raises the returned exception."""
    TrialWriter(trial).rejected(reason, (time.perf_counter() - started) * 1e3)
    return optuna.TrialPruned(f"rejected before training: {reason}")


class OverBudget(Exception):
    """Other workers took the study's last budget slot after this trial was created; it does nothing."""


class Unqueued(Exception):
    """A prescreened search trains only queued trials; other workers emptied the queue as this one started, so
    Optuna sampled a fresh proposal: it is recorded as a proposal nobody scored (``screened``) and not trained."""


@dataclass(frozen=True)
class TrialContext:
    """What a trial knows of the worker that runs it."""

    budget: int
    """Finished trials the study may hold."""
    identity: WorkerIdentity
    study: StudyRef
    retry: Retry
    guard: PreemptionGuard
    placement: Placement | None = None


class Objective:
    """Callable for ``study.optimize``; returns the values of the search's objectives, in order."""

    def __init__(self, space: SearchSpace, out: Path, context: TrialContext, *, allow_import: bool = False) -> None:
        self.space = space
        self.out = out
        self.context = context
        self.allow_import = allow_import
        self.monitor = next((m for m in space.objective_names if m in ("val/acc", "val/loss")), "val/acc")

    def __call__(self, trial: optuna.Trial, *, queued_only: bool = False) -> float | list[float]:
        """``queued_only``: train the trial only if it was taken from the queue (a prescreened search's
        promoted proposals and retries); else it ends as :class:`Unqueued`."""
        try:
            return self._run(trial, queued_only)
        except KeyboardInterrupt as stop:  # SIGTERM or Ctrl-C: hand the trial back, then stop
            self._hand_back(trial, stop.reason if isinstance(stop, Preempted) else "interrupted", stop=True)
            raise
        except (optuna.TrialPruned, OverBudget, Unqueued):
            raise
        except Exception as err:
            guard = self.context.guard
            if guard.requested.is_set():  # e.g. DDP ranks killed by the same signal: a stop, not a failure
                self._hand_back(trial, guard.reason or "preempted", stop=True)
                raise Preempted(guard.reason or "preempted") from err
            self._record_error(trial, err)
            fault = fault_of(err)
            if fault is None:  # a bug: queue the parameters for the run after the fix, then stop the search
                TrialWriter(trial).bug()
                self._hand_back(trial, f"a bug, not a training fault: {describe(err)}")
                raise TrialBug(trial.number, err) from err
            TrialWriter(trial).fault(fault)
            if fault in STICKY:  # the process may be unusable: queue the parameters, leave for a fresh one
                self._hand_back(trial, f"{fault} fault; queued again for a fresh worker process: {describe(err)}")
                raise DeviceLost(trial.number, err) from err
            raise TrialFault(fault, err) from err

    @staticmethod
    def _record_error(trial: optuna.Trial, err: Exception) -> None:
        """Optuna keeps no reason for a failed trial: record it, with the innermost frames of an unexpected
        error (``traceback``: at most 8 frames, 4,000 characters) for ``archdsl status`` and the report."""
        if isinstance(err, ArchDSLError):
            TrialWriter(trial).error("; ".join(str(p) for p in err.problems))
        else:
            frames = "".join(traceback.format_tb(err.__traceback__, limit=-8))[-3400:]
            TrialWriter(trial).error(f"{type(err).__name__}: {err}", f"{frames}{type(err).__name__}: {str(err)[:500]}")

    def _me(self, trial: optuna.Trial) -> tuple[FrozenTrial, list[FrozenTrial]]:
        trials = trial.study.get_trials(deepcopy=False)
        return next(t for t in trials if t.number == trial.number), trials

    def _hand_back(self, trial: optuna.Trial, reason: str, *, stop: bool = False) -> None:
        """Queue this trial's parameters again (before it is failed, so its budget slot stays taken); ``stop``:
        its worker was asked to stop (not counted against ``workers.max_retry``)."""
        try:
            me, _ = self._me(trial)
            self.context.retry(trial.study, me, stop=stop)
            TrialWriter(trial).reason(reason)
        except Exception as err:  # the storage is gone: Optuna's heartbeat rule retries the trial instead
            print(f"trial {trial.number}: could not hand back ({type(err).__name__}: {err})", file=sys.stderr)

    def _run(self, trial: optuna.Trial, queued_only: bool) -> float | list[float]:
        started = time.perf_counter()
        ctx = self.context
        me, trials = self._me(trial)
        record = TrialWriter(trial)
        prescreen = self.space.definition.prescreen
        if queued_only and prescreen is not None and not was_queued(me):
            record.screening(prescreen.proxy, trial.number)
            record.reason("sampled after other workers had emptied the queue: a proposal nobody scored, not trained")
            raise Unqueued(f"trial {trial.number}: the queue was empty when it started")
        if not admits(trials, me, ctx.budget):
            record.over_budget(f"the budget of {ctx.budget} trials was taken by other workers")
            raise OverBudget(f"trial {trial.number}: the budget of {ctx.budget} trials is taken")
        ctx.identity.record(record)
        ctx.guard.check()
        budget = self.space.definition.budget
        try:
            planned = plan_spec(resolve(self.space, trial))  # the one plan of this trial, handed on
        except ArchDSLError as err:
            raise reject(trial, "; ".join(f"{p.path}: {p.message}" for p in err.problems), started) from None
        plan = planned.plan
        record.plan(plan.params, plan.flops)
        metrics: dict[str, float] = {"params": float(plan.params), "flops": float(plan.flops)}
        over = constrain(trial, budget, metrics)
        if over is not None:
            raise reject(trial, over, started)
        if measures_latency(self.space):
            timing = self._latency(planned)
            metrics["latency_ms"] = round(timing.ms, 4)
            record.latency(metrics["latency_ms"])
            record.latency_timing(timing.settings())
            over = constrain(trial, budget, metrics)
            if over is not None:
                raise reject(trial, over, started)
        record.spec(spec_to_data(planned.spec))
        record.device(self._device(planned.spec))
        trains = not set(self.space.objective_names) <= UNTRAINED
        # a trained trial records every proxy of its untrained network, which `report` correlates with what the
        # training gave (one batch: milliseconds to a second, against minutes to days of training)
        wanted = PROXY_NAMES if trains else [n.removeprefix(PROXY_METRIC) for n in self.space.objective_names]
        if any(n in PROXY_NAMES for n in wanted):
            scores = self._proxies(planned, [n for n in wanted if n in PROXY_NAMES])
            record.proxies(scores)
            metrics.update({f"{PROXY_METRIC}{name}": value for name, value in scores.items()})
        if not trains:
            return self._values(metrics)  # nothing to train for
        ctx.guard.check()
        metrics.update(self._train(trial, planned, start_of(me, trials, self.out)))
        return self._values(metrics)

    def _train(self, trial: optuna.Trial, planned: PlannedSpec, start: Start) -> dict[str, float]:
        from archdsl.search.fidelity import climb, cost_epochs
        from archdsl.search.pruning import PruningCallback  # training imports torch and Lightning; planning does not
        from archdsl.search.tracking import trial_run
        from archdsl.train.fit import LAST, Abandoned, FitResult, fit
        from archdsl.train.stop_at_batch import StopAtBatch

        out = start.directory
        pruner = self.space.definition.pruner
        pruning = len(self.space.objective_names) == 1 and pruner.name != "none"
        rungs = pruning and pruner.fidelity != "epochs"  # rungs of data or resolution (archdsl.search.fidelity)
        callback = PruningCallback(trial, self.monitor, self.context.study, prune=pruning and not rungs)
        record, host = TrialWriter(trial), self.context.identity.host
        if not rungs:  # rungs retrain from scratch: a retry of a lost trial starts over, nothing to resume
            record.last_checkpoint(out / LAST)
        if start.checkpoint is not None and start.lost is not None and not rungs:
            record.resumed(start.lost, start.epoch, start.checkpoint)
            record.epoch(start.epoch)
            if pruning:  # the pruner sees the epochs already trained, as if the trial had never stopped
                for step, value in sorted(start.reported.items()):
                    trial.report(value, step)
        elif start.started_over:
            record.started_over(start.started_over)
        continues = start.lost if start.checkpoint is not None and not rungs else None
        tracking = trial_run(trial.number, trial.params, planned.spec, self.out, self.context.study.name, continues)

        def train(rung: PlannedSpec, where: Path, test: bool = True) -> FitResult:
            named = tracking if where == out else replace(tracking, name=f"{tracking.name} {where.relative_to(out)}")
            return fit(
                rung,
                where,
                resume=start.checkpoint is not None and not rungs,
                force=True,
                progress=False,
                allow_import=self.allow_import,
                callbacks=[callback, StopAtBatch(self.context.guard)],
                placement=self.context.placement,
                test=test,
                tracking=named,
            )

        try:
            if rungs:
                climbed = climb(trial, planned, pruner, out, self.monitor, train, host)
                result, epochs, seconds = climbed.result, climbed.epochs, climbed.seconds
            else:
                result = train(planned, out)
                epochs, seconds = result.epochs, result.seconds
                record.cost_epochs(cost_epochs(result.epochs, planned.spec, planned.spec))
        except Abandoned as stop:
            record.epochs(stop.epoch + 1)
            record.cost_epochs(cost_epochs(stop.epoch + 1, planned.spec, planned.spec))
            if (out / "best.ckpt").is_file():
                record.checkpoint(out / "best.ckpt", host)
            raise optuna.TrialPruned(f"pruned after epoch {stop.epoch}") from None
        record.checkpoint(Path(result.checkpoint), host)
        record.result(
            val_acc=result.val_acc,
            val_loss=result.val_loss,
            test_acc=result.test_acc,
            seconds=seconds,
            epochs=epochs,
        )
        return {"val/acc": result.val_acc, "val/loss": result.val_loss}

    def _proxies(self, planned: PlannedSpec, names: Sequence[str]) -> dict[str, float]:
        from archdsl.search.proxies import score_untrained

        device = device_name(self.context.placement, planned.spec.train.accelerator)
        return score_untrained(planned, names, device=device, allow_import=self.allow_import)

    def _device(self, spec: ModelSpec) -> str:
        """Where this trial trains, as ``archdsl status`` shows it: ``cpu``, ``cuda:1``, ``cuda x4`` (DDP)."""
        placement = self.context.placement
        _, _, devices = placement.trainer_args(spec.train) if placement else spec_trainer_args(spec.train)
        name = device_name(placement, spec.train.accelerator)
        return f"{name} x{devices}" if devices > 1 else name

    def _latency(self, planned: PlannedSpec) -> Timing:
        """Timed as ``budget.latency`` says (:mod:`archdsl.search.latency`; torch is imported there)."""
        device = device_name(self.context.placement, planned.spec.train.accelerator)
        return time_trial(planned, self.space.definition.budget.latency, device)

    def _values(self, metrics: dict[str, float]) -> float | list[float]:
        values = [metrics[name] for name in self.space.objective_names]
        return values[0] if len(values) == 1 else values
