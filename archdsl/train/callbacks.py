"""The Lightning callbacks every ``fit`` runs with: epochs counted, abandoned runs, a checkpoint before the
first step, Ctrl-C handed back to the caller's handler, CUDA's fast numerics."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["ABANDONED", "EPOCHS", "CudaSpeed", "EpochCount", "InitialCheckpoint", "RestoreSigint", "abandon"]

ABANDONED, EPOCHS = "fit/abandoned_after_epoch", "fit/epochs"
"""Keys in ``trainer.callback_metrics``, which Lightning carries back from spawned DDP ranks."""


def abandon(trainer: L.Trainer, epoch: int) -> None:
    """Stop at the end of this epoch and make ``fit`` raise ``Abandoned`` (call on every rank)."""
    trainer.callback_metrics[ABANDONED] = torch.tensor(float(epoch))
    trainer.should_stop = True


class EpochCount(Callback):
    """Record the epochs trained where the main process can read them, also after spawned ranks."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.callback_metrics[EPOCHS] = torch.tensor(float(trainer.current_epoch + 1))


class InitialCheckpoint(Callback):
    """Save ``last.ckpt`` before the first step, so a failure in epoch 0 still leaves a loadable one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            trainer.save_checkpoint(self.path)


class RestoreSigint(Callback):
    """Lightning ignores SIGINT after a Ctrl-C (for its graceful shutdown) and leaves it ignored; this puts
    back the handler the caller had when the callback was made, so a later Ctrl-C still reaches it."""

    def __init__(self) -> None:
        self.handler: Any = signal.getsignal(signal.SIGINT)

    def __getstate__(self) -> dict[str, Any]:  # spawned ranks keep their own handlers
        return {"handler": None}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.handler is not None:
            signal.signal(signal.SIGINT, self.handler)


class CudaSpeed(Callback):
    """On a CUDA device, unless the run is ``deterministic``: float32 matmuls in TF32
    (``torch.set_float32_matmul_precision("high")``) and cuDNN's benchmarked choice of convolution kernels, set in
    every process that trains (DDP-spawned ranks included) and put back as they were when the stage ends."""

    def __init__(self, deterministic: bool) -> None:
        self.deterministic = deterministic
        self._saved: tuple[str, bool] | None = None

    def __getstate__(self) -> dict[str, Any]:  # a spawned rank saves its own settings
        return {"deterministic": self.deterministic, "_saved": None}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.deterministic or trainer.strategy.root_device.type != "cuda" or self._saved is not None:
            return
        self._saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark)
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._saved is not None:
            matmul, benchmark = self._saved
            torch.set_float32_matmul_precision(matmul)
            torch.backends.cudnn.benchmark = benchmark
            self._saved = None
