"""Report the per-epoch validation metric to an Optuna trial and prune through the public Trial API."""

from __future__ import annotations

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback

__all__ = ["PruningCallback"]


class PruningCallback(Callback):
    """After each validation: ``trial.report(metric, epoch)``; raise ``TrialPruned`` if the pruner says so.

    Decides on rank 0 and broadcasts the decision, so every DDP rank stops together.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.epochs = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.epochs = epoch + 1
        prune = False
        if trainer.is_global_zero:
            self.trial.report(float(value), step=epoch)
            prune = self.trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            raise optuna.TrialPruned(f"pruned after epoch {epoch} with {self.monitor}={float(value):.4f}")
