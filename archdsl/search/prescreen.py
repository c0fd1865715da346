"""Prescreening: of every ``pool`` proposals of the sampler, train only the ``keep`` a zero-cost proxy ranks best.

A worker whose study has no queued trial opens a pool: it asks the sampler for ``pool`` proposals (Optuna
trials, marked ``screened`` before anything else), plans each (refusing what breaks a shape rule or a budget,
with its constraints set, as a trial would), scores the feasible ones with the proxy on one seeded batch of
the search's training data, and finishes every proposal as FAIL: samplers learn nothing from a proposal
nobody trained (a PRUNED one without values would land in TPE's "good" group while few trials are complete).
The best ``keep`` (fewer when fewer budget slots remain) are then queued with Optuna's ``enqueue_trial``,
best first, each carrying the proposal it trains (``promoted``); any worker takes them like retries.

Screened proposals never take a budget slot (:func:`archdsl.search.budget.admits`, :func:`tally`) and are never
queued again; a pool cut short (Ctrl-C, SIGTERM, a lost storage) queues nothing, and the next run opens a new
one. Several workers each open a pool only while no queued trial is left, so at most ``workers x keep`` trials
wait at once; one queued past the budget does nothing (``over_budget``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from archdsl.errors import ArchDSLError
from archdsl.planner import plan_spec
from archdsl.search.budget import Tally, tally
from archdsl.search.constraints import constrain
from archdsl.search.record import TrialWriter, promoted_attrs
from archdsl.search.space.load import SearchSpace
from archdsl.search.space.resolution import resolve
from archdsl.search.storages.liveness import WorkerIdentity
from archdsl.train.preempt import PreemptionGuard

__all__ = ["Pool", "screen_pool"]


@dataclass(frozen=True)
class Pool:
    """What one round of prescreening did."""

    first: int
    """The number of its first proposal (names the pool)."""
    scored: tuple[tuple[int, float], ...]
    """``(proposal number, score)`` of every scored proposal, best first."""
    refused: int
    """Proposals refused before scoring (shape rules, budget limits)."""
    promoted: tuple[int, ...]
    """The proposals queued to train, best first."""
    seconds: float

    def describe(self, proxy: str) -> str:
        kept = ", ".join(f"#{n} ({s:.4g})" for n, s in self.scored[: len(self.promoted)])
        refused = f", {self.refused} refused" if self.refused else ""
        return (
            f"prescreen: {len(self.scored)} proposals scored with {proxy} in {self.seconds:.1f} s{refused}; "
            f"training the best {len(self.promoted)}: {kept or 'none'}"
        )


def screen_pool(
    study: optuna.Study,
    space: SearchSpace,
    counts: Tally,
    target: int,
    guard: PreemptionGuard,
    *,
    identity: WorkerIdentity | None = None,
    device: str = "cpu",
    allow_import: bool = False,
    progress: bool = True,
) -> Pool | None:
    """Open one pool and queue its best proposals; None when no budget slot is free."""
    from archdsl.search.proxies import score_untrained  # torch: only once a pool is opened

    prescreen = space.definition.prescreen
    assert prescreen is not None
    slots = target - counts.finished - counts.running - counts.waiting
    if slots <= 0:
        return None
    started = time.perf_counter()
    first: int | None = None
    scored: list[tuple[float, int, dict[str, object]]] = []
    refused = 0
    for _ in range(prescreen.pool):
        guard.check()
        with warnings.catch_warnings():  # a proposal lives milliseconds: no heartbeat thread for it
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = study.ask()
        first = trial.number if first is None else first
        writer = TrialWriter(trial)
        try:
            writer.screening(prescreen.proxy, first)
            if identity is not None:  # a proposal of a worker that died is failed (never retried) like a trial
                identity.record(writer)
            try:
                planned = plan_spec(resolve(space, trial))
            except ArchDSLError as err:
                writer.reason("; ".join(f"{p.path}: {p.message}" for p in err.problems))
                refused += 1
                continue
            writer.plan(planned.plan.params, planned.plan.flops)
            metrics = {"params": float(planned.plan.params), "flops": float(planned.plan.flops)}
            over = constrain(trial, space.definition.budget, metrics)
            if over is not None:
                writer.reason(over)
                refused += 1
                continue
            proxy = prescreen.proxy
            value = score_untrained(planned, [proxy], device=device, allow_import=allow_import)[proxy]
            scored.append((value, trial.number, dict(trial.params)))
            writer.screening(prescreen.proxy, first, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            # failed meanwhile by another worker's stale-trial rule (it saw no heartbeat): it is FAIL either way
            continue
        finally:  # also on Ctrl-C: a proposal is never left running
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study.tell(trial, state=TrialState.FAIL)
    assert first is not None
    best = sorted(scored, key=lambda s: (math.isnan(s[0]), 0.0 if math.isnan(s[0]) else -s[0], s[1]))  # NaN last
    # count the free slots again: another worker may have queued or started trials while this pool was scored
    fresh = tally(study.get_trials(deepcopy=False))
    slots = target - fresh.finished - fresh.running - fresh.waiting
    promoted = best[: max(0, min(prescreen.keep, slots))]
    for value, number, params in promoted:
        study.enqueue_trial(params, user_attrs=promoted_attrs(number, prescreen.proxy, value))
    seconds = time.perf_counter() - started
    pool = Pool(first, tuple((n, v) for v, n, _ in best), refused, tuple(n for _, n, _ in promoted), seconds)
    if progress:
        print(pool.describe(prescreen.proxy), file=sys.stderr, flush=True)
    return pool
