"""Queue the parameters of a lost trial again: Optuna's ``RetryHeartbeatStaleTrialCallback``, for every loss.

The same callback serves trials failed as stale by Optuna's heartbeat, trials of dead local processes
(storages without heartbeat), and trials a worker hands back on SIGTERM or Ctrl-C, so the retry history
(``retry_history`` system attribute) means one thing. ``max_retry`` counts the losses that may be the
trial's own doing (stale, a device fault, a bug); a stop asked from outside (SIGTERM of a preemption or a
time limit, Ctrl-C) is no failure of the trial and never uses it up: a 20-hour trial under a 4-hour time
limit is handed back five times and resumes each time. The queued trial starts without the user attributes
of the lost one (host, pid, epoch, reason...): the worker that runs it writes its own.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from archdsl.search.record import INTERRUPTED, PREEMPTED, TrialRecord, retry_history, without_record

__all__ = ["Retry"]

STOPS = frozenset({PREEMPTED, INTERRUPTED})
"""Reasons of a trial handed back because its worker was asked to stop."""


class Retry:
    """``Retry(max_retry)(study, trial)``: queue ``trial``'s parameters once more unless ``max_retry`` of its
    attempts (this one included) were lost other than by a stop; ``stop=`` says how this attempt ended."""

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._callback = RetryHeartbeatStaleTrialCallback(max_retry=None)

    def __call__(self, study: optuna.Study, trial: FrozenTrial, *, stop: bool = False) -> None:
        if TrialRecord.of(trial).screened:  # a prescreen proposal whose worker died: never queued to train
            return
        earlier = retry_history(trial)
        if earlier:
            records = {t.number: TrialRecord.of(t) for t in study.get_trials(deepcopy=False) if t.number in earlier}
            losses = sum(n not in records or records[n].reason not in STOPS for n in earlier)
        else:
            losses = 0
        if losses + (not stop) > self.max_retry:
            return
        self._callback(study, without_record(trial))
