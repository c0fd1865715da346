"""Report the per-epoch validation metric to an Optuna trial and prune through the public Trial API.

A value is reported at step = epochs trained (from 1): the resource Optuna's pruners count, so
``SuccessiveHalvingPruner(min_resource=1)`` decides after the first epoch and ``n_warmup_steps=2`` lets the
median pruner decide after the second (with Lightning's zero-based epoch index as the step, as Optuna's own
Lightning callback reports, every rung would come one epoch late).

Only rank 0 talks to the storage: it reports, asks the pruner, and broadcasts the decision, so every DDP
rank stops together (:func:`archdsl.train.fit.abandon` on each). Under ``ddp_spawn`` the ranks run in
processes of their own: the callback is pickled without its live trial, and rank 0 opens the study again
from its :class:`~archdsl.search.storages.connect.StudyRef` the first time it reports.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from archdsl.search.record import TrialWriter
from archdsl.search.storages.connect import StudyRef
from archdsl.train.fit import abandon

__all__ = ["PruningCallback"]


class PruningCallback(Callback):
    """After each validation: record the epoch (``epoch`` user attribute, shown by ``archdsl status``); with
    ``prune``, ``trial.report(metric, epochs trained)`` and stop and abandon the fit if the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str, study: StudyRef, *, prune: bool = True) -> None:
        self.trial: optuna.Trial | None = trial
        self.number = trial.number
        self.monitor = monitor
        self.study = study
        self.pruner = trial.study.pruner
        self.prune = prune
        self.epochs = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["trial"] = None  # a live trial holds a connection pool; rank 0 reopens the study when it reports
        return state

    def _trial(self) -> optuna.Trial:
        if self.trial is None:
            self.trial = self.study.trial(self.number, self.pruner)
        return self.trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # not the final validation of the best checkpoint: that is no epoch
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.epochs = epoch + 1
        prune = False
        if trainer.is_global_zero:
            trial = self._trial()
            TrialWriter(trial).epoch(self.epochs)
            if self.prune:
                trial.report(float(value), step=self.epochs)
                prune = trial.should_prune()
        if self.prune and trainer.strategy.broadcast(prune, src=0):
            abandon(trainer, epoch)
