"""The Lightning side of :class:`~archdsl.train.preempt.PreemptionGuard`: stop at the next batch boundary."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from archdsl.train.preempt import PreemptionGuard, StopRequested

__all__ = ["StopAtBatch"]


class StopAtBatch(Callback):
    """Raises :class:`StopRequested` after a training or validation batch once the guard has a request."""

    def __init__(self, guard: PreemptionGuard | None) -> None:
        self.guard = guard

    def __getstate__(self) -> dict[str, Any]:  # DDP-spawned ranks stop with their parent, not by themselves
        return {"guard": None}

    def _check(self) -> None:
        if self.guard is not None and self.guard.requested.is_set():
            raise StopRequested(self.guard.reason or "preempted")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._check()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._check()
