"""One progress line per finished trial on stderr: counts, best so far, elapsed, ETA.

The same printer serves one process (an Optuna callback after each trial) and a search of several
workers (the parent polls the storage), so every worker's trials appear in one display.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.budget import tally
from archdsl.search.record import TrialRecord, retry_history
from archdsl.search.space.load import SearchSpace
from archdsl.search.study import best_trials

__all__ = ["Progress", "clock", "say_resuming"]


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def say_resuming(study: optuna.Study, where: str, target: int, stream: TextIO | None = None) -> None:
    """One line when the study already holds trials: this run continues it, it does not start over."""
    counts = tally(study.get_trials(deepcopy=False))
    if counts.finished or counts.running:
        left = max(0, target - counts.finished)
        print(
            f"resuming study '{study.study_name}' in {where}: {counts.finished} of {target} trials finished, "
            f"{counts.running} running, {left} to go (--new-study starts over)",
            file=stream or sys.stderr,
            flush=True,
        )


class Progress:
    """Prints the trials that finished since the last call; ``Progress(...)(study, trial)`` is an Optuna
    callback."""

    def __init__(
        self,
        space: SearchSpace,
        target: int,
        study: optuna.Study,
        stream: TextIO | None = None,
        *,
        show_worker: bool = False,
        deadline: float | None = None,
    ) -> None:
        self.space, self.target, self.show_worker = space, target, show_worker
        self.deadline = deadline
        """``time.monotonic()`` after which no trial starts (the timeout), or None."""
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        before = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        self.seen = {t.number for t in before}
        self.done = tally(before).finished
        """Finished trials (complete, pruned, rejected) this printer has seen, in the order it printed them:
        the ``[done/target]`` of its lines, which never repeats or goes down when trials finish out of order."""
        self.finished_here = 0

    def __call__(self, study: optuna.Study, trial: Any = None) -> None:
        self.update(study)

    def update(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        new = sorted((t for t in trials if t.state.is_finished() and t.number not in self.seen), key=lambda t: t.number)
        if not new:
            return
        counts = tally(trials)
        best = best_trials(study)
        retries = {retry_history(t)[-1]: t.number for t in trials if retry_history(t)}
        for t in new:
            self.seen.add(t.number)
            if TrialRecord.of(t).screened:  # a prescreen pool prints one line of its own
                continue
            if t.state != TrialState.FAIL:
                self.finished_here += 1
            if TrialRecord.of(t).finished:
                self.done += 1
            print(self._line(t, self.done, counts, best, retries.get(t.number)), file=self.stream, flush=True)

    def _line(self, t: FrozenTrial, done: int, counts: Any, best: list[FrozenTrial], retry: int | None) -> str:
        record = TrialRecord.of(t)
        if record.outcome == "over_budget":
            return f"trial {t.number} not run: the budget of {self.target} trials was taken by other workers"
        elapsed = time.perf_counter() - self.start
        left = max(0, self.target - done)
        eta = clock(elapsed / self.finished_here * left) if self.finished_here else "?"
        if self.deadline is not None and left:
            to_go = max(0.0, self.deadline - time.monotonic())
            if not self.finished_here or elapsed / self.finished_here * left > to_go:
                eta += f" (the timeout stops new trials in {clock(to_go)})"
        state = t.state.name.lower()
        if record.outcome == "rejected":
            state = f"rejected ({(record.reason or '')[:60]})"
        elif t.state == TrialState.FAIL:
            state = f"failed ({record.why[:80]}{f'; queued again as #{retry}' if retry is not None else ''})"
        values = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.space.objective_names, t.values or [], strict=False))
        where = record.worker if self.show_worker else None
        best_text = ""
        if len(best) == 1:
            best_text = f"best #{best[0].number} {self.space.objective_names[0]}={best[0].values[0]:.4f}"
        elif best:
            best_text = f"pareto front: {len(best)} trials"
        head = " ".join(x for x in (f"[{done}/{self.target}] trial {t.number} {state}", values) if x)
        return (
            f"{head}{f' on {where}' if where else ''}  |  "
            f"complete {counts.complete} pruned {counts.pruned} rejected {counts.rejected} failed {counts.fail}"
            f"  |  {best_text}  |  elapsed {clock(elapsed)} ETA {eta}"
        )
