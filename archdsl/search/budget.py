"""The trial budget of a study, counted from the storage, exact under concurrent workers.

A study's budget is ``budget.trials`` *finished* trials: complete, pruned (during training) or rejected
(before training). Workers race: two may start the last trial at once. The rule that settles it is
:func:`admits`, applied by every trial when it starts: order the trials that hold or may still take a
slot (finished, running, waiting) by their *slot key* ``(first trial of its retry chain, number)``; a trial
may run only if fewer than ``budget`` finished trials and earlier-keyed running or waiting trials exist.
Trial numbers are unique and increase, so of two racing trials the later one yields; a retry inherits the
slot of the trial it replaces (it keeps that trial's key), so retrying never over-runs the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from optuna.trial import FrozenTrial, TrialState

from archdsl.search.record import TrialRecord, retry_history

__all__ = ["Tally", "admits", "next_step", "retried_numbers", "retry_history", "slot_key", "tally"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
IN_FLIGHT = (TrialState.RUNNING, TrialState.WAITING)


def slot_key(trial: FrozenTrial) -> tuple[int, int]:
    history = retry_history(trial)
    return (history[0] if history else trial.number, trial.number)


def admits(trials: Iterable[FrozenTrial], me: FrozenTrial, budget: int) -> bool:
    """May ``me`` (just started) run without the study finishing more than ``budget`` trials?"""
    key = slot_key(me)
    taken = 0
    for t in trials:
        if t.number == me.number or TrialRecord.of(t).screened:  # prescreen proposals take no slot
            continue
        if t.state in FINISHED or (t.state in IN_FLIGHT and slot_key(t) < key):
            taken += 1
    return taken < budget


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Trials whose parameters were queued again (their retry took over their slot)."""
    return {n for t in trials for n in retry_history(t)}


@dataclass(frozen=True)
class Tally:
    """Trials by what they mean for the budget."""

    complete: int = 0
    pruned: int = 0
    """Stopped during training by the pruner."""
    rejected: int = 0
    """Refused before training (shape rule or budget limit)."""
    fail: int = 0
    """Failed and not retried."""
    retried: int = 0
    """Failed (stale, preempted, interrupted) and queued again."""
    over_budget: int = 0
    """Started after other workers had taken the last slot; did nothing."""
    running: int = 0
    waiting: int = 0
    screened: int = 0
    """Proposals the prescreen scored and did not train (or is scoring); never counted against the budget."""

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.rejected

    def counts(self) -> dict[str, int]:
        """The ``trials`` object of ``search --json`` (``screened`` only for a prescreened search)."""
        counts = {"complete": self.complete, "pruned": self.pruned, "rejected": self.rejected, "fail": self.fail}
        return counts | ({"screened": self.screened} if self.screened else {})


def tally(trials: Sequence[FrozenTrial]) -> Tally:
    retried = retried_numbers(trials)
    kinds = ("complete", "pruned", "rejected", "over_budget", "running", "waiting", "screened")
    n = dict.fromkeys((*kinds, "fail", "retried"), 0)
    for t in trials:
        outcome = TrialRecord.of(t).outcome
        if outcome == "screening":
            n["screened"] += 1
        elif outcome in kinds:
            n[outcome] += 1
        elif t.number in retried:
            n["retried"] += 1
        else:
            n["fail"] += 1
    return Tally(**n)


def next_step(t: Tally, budget: int) -> Literal["done", "run", "wait"]:
    """``done``: the budget is met; ``run``: start (or take a queued) trial; ``wait``: the remaining slots are
    held by running trials, which will finish or, if their worker died, go stale and be retried."""
    if t.finished >= budget:
        return "done"
    if t.waiting or t.finished + t.running < budget:
        return "run"
    return "wait"
