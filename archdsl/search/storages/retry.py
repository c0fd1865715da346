"""Queue the parameters of a lost trial again: Optuna's ``RetryHeartbeatStaleTrialCallback``, for every loss.

The same callback serves trials failed as stale by Optuna's heartbeat, trials of dead local processes
(storages without heartbeat), and trials a worker hands back on SIGTERM or Ctrl-C, so ``max_retry`` and the
retry history (``retry_history`` system attribute) mean one thing. The queued trial starts without the
user attributes of the lost one (host, pid, epoch, reason...): the worker that runs it writes its own.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from archdsl.search.record import without_record

__all__ = ["Retry"]


class Retry:
    """``Retry(max_retry)(study, trial)``: queue ``trial``'s parameters once more unless retried ``max_retry``
    times already."""

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._callback(study, without_record(trial))
