"""``archdsl status``: a running (or finished) study at a glance, read from its storage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.budget import Tally, tally
from archdsl.search.record import StudyRecord, TrialRecord
from archdsl.search.storages.heartbeats import last_heartbeats
from archdsl.search.study import best_trials

__all__ = ["RunningTrial", "StudyStatus", "study_status"]


@dataclass(frozen=True)
class RunningTrial:
    number: int
    worker: str | None
    host: str | None
    pid: int | None
    device: str | None
    epoch: int
    """Epochs finished so far."""
    epochs: int | None
    """Epochs the trial trains for."""
    running_s: float
    heartbeat_age_s: float | None
    """Seconds since Optuna's last heartbeat for the trial (``None``: the storage has no heartbeat)."""
    retry_of: int | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StudyStatus:
    study: str
    storage: str
    objectives: list[str]
    budget: int | None
    tally: Tally
    running: list[RunningTrial]
    best: list[FrozenTrial]
    trials_per_hour: float | None
    eta_s: float | None
    grace_s: int | None

    def to_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "study": self.study,
            "storage": self.storage,
            "objectives": self.objectives,
            "budget": self.budget,
            "trials": {
                **t.counts(),
                "retried": t.retried,
                "over_budget": t.over_budget,
                "running": t.running,
                "waiting": t.waiting,
                "finished": t.finished,
            },
            "running": [r.to_json() for r in self.running],
            "best": [{"number": b.number, "values": list(b.values), "params": dict(b.params)} for b in self.best],
            "trials_per_hour": self.trials_per_hour,
            "eta_s": self.eta_s,
        }


def study_status(study: optuna.Study, storage: optuna.storages.BaseStorage, display: str) -> StudyStatus:
    trials = study.get_trials(deepcopy=False)
    counts = tally(trials)
    stored = StudyRecord.of(study)
    definition, base = stored.definition(), stored.base()
    objectives = stored.objective_names(len(study.directions))
    budget = stored.budget()
    epochs = base.train.epochs if base is not None else None
    beats = last_heartbeats(storage, study.study_name)
    now = dt.datetime.now()
    proposals = {t.number for t in trials if TrialRecord.of(t).screened}  # a prescreen's, scored in milliseconds
    running = [
        _running(t, now, beats, epochs) for t in trials if t.state == TrialState.RUNNING and t.number not in proposals
    ]
    rate = _rate(trials)
    left = max(0, (budget or 0) - counts.finished)
    eta = left / rate * 3600 if rate and budget else None
    grace = definition.workers.grace_seconds if definition is not None else None
    return StudyStatus(
        study.study_name, display, objectives, budget, counts, running, best_trials(study), rate, eta, grace
    )


def _running(
    t: FrozenTrial, now: dt.datetime, beats: tuple[dt.datetime, dict[int, dt.datetime]] | None, epochs: int | None
) -> RunningTrial:
    record = TrialRecord.of(t)
    age = None
    if beats is not None and t.number in beats[1]:
        age = round((beats[0] - beats[1][t.number]).total_seconds(), 1)
    return RunningTrial(
        number=t.number,
        worker=record.worker,
        host=record.host,
        pid=record.pid,
        device=record.device,
        epoch=record.epoch,
        epochs=record.trained_epochs or epochs,
        running_s=round((now - t.datetime_start).total_seconds(), 1) if t.datetime_start else 0.0,
        heartbeat_age_s=age,
        retry_of=record.retry_of[-1] if record.retry_of else None,
    )


def _rate(trials: list[FrozenTrial]) -> float | None:
    """Finished trials per hour since the first trial started."""
    ends = [t.datetime_complete for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    done = [e for e in ends if e is not None]
    if not done or not starts:
        return None
    hours = (max(done) - min(starts)).total_seconds() / 3600
    return round(len(done) / hours, 2) if hours > 0 else None
