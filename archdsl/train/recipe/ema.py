"""An exponential moving average of the weights (``train.ema``), by Lightning's weight-averaging callback.

Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` does the bookkeeping: it swaps the average
into the model for every validation (so ``val/acc``, what a search ranks, is the average's), writes the
average as a checkpoint's ``state_dict`` (so ``best.ckpt``, ``export`` and ``predict`` use it) with the trained
weights beside it under ``current_model_state`` (so ``--resume`` continues both), and leaves the average in the
model when training ends. archdsl's part:

- the average is torch's :class:`~torch.optim.swa_utils.AveragedModel` with its update count on the host: the
  decay of step ``s`` is ``min(decay, 1 - s^(-2/3))`` with ``warmup`` (timm's ``ModelEmaV3`` warm-up), else
  ``decay``; the first step copies the weights. torch's own update reads its device-side count every step (a
  device synchronisation per step on CUDA); this one never does;
- batch-norm running statistics (``running_mean``, ``running_var``) are averaged with the weights; every other
  buffer is copied (batch counters, and constant tables such as attention masks, whose ``-inf`` entries an
  average would turn into NaN);
- the average lives on the model's device (moved there once the trainer has placed the model), not on the
  device the model was built on;
- after training the average is dropped, so the final validation and test of ``best.ckpt`` evaluate that file's
  (averaged) weights and nothing is swapped.
"""

from __future__ import annotations

import itertools
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import nn
from torch.optim.swa_utils import AveragedModel

from archdsl.spec.augment import EmaSpec

__all__ = ["EmaWeights", "HostCountedAverage", "ema_decay"]

WARMUP_POWER = 2.0 / 3.0


def ema_decay(step: int, decay: float, warmup: bool) -> float:
    """The decay of update ``step`` (1-based): ``min(decay, 1 - step^(-2/3))`` with ``warmup``, else ``decay``."""
    return min(decay, 1.0 - step**-WARMUP_POWER) if warmup else decay


def _running_stats(model: nn.Module) -> list[bool]:
    """For each of ``model.buffers()``, in order: is it a normalisation layer's running mean or variance?"""
    stats = {
        id(buffer)
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._NormBase)
        for name, buffer in module.named_buffers(recurse=False)
        if name in ("running_mean", "running_var")
    }
    return [id(buffer) in stats for buffer in model.buffers()]


class HostCountedAverage(AveragedModel):
    """An exponential moving average of ``model``'s parameters and buffers whose update count is a host integer."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool) -> None:
        super().__init__(model, use_buffers=True)
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        self._averaged = [True] * len(list(model.parameters())) + _running_stats(model)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged = list(itertools.chain(self.module.parameters(), self.module.buffers()))
        current = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
        pairs = list(zip(averaged, current, strict=True))
        mean = [p for p, avg in zip(pairs, self._averaged, strict=True) if avg]
        if self.updates == 0:
            torch._foreach_copy_([a for a, _ in mean], [c for _, c in mean])
        else:
            weight = 1.0 - ema_decay(self.updates + 1, self.decay, self.warmup)
            torch._foreach_lerp_([a for a, _ in mean], [c for _, c in mean], weight)
        for (a, c), avg in zip(pairs, self._averaged, strict=True):
            if not avg:
                a.copy_(c)
        self.updates += 1
        self.n_averaged.add_(1)  # the device-side count the checkpoint keeps, never read during training

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)  # once, when a checkpoint is restored
        return result


class EmaWeights(WeightAveraging):
    """``train.ema``: see the module."""

    def __init__(self, spec: EmaSpec) -> None:
        super().__init__(use_buffers=True)
        self.spec = spec

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = HostCountedAverage(pl_module, self.spec.decay, self.spec.warmup)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None:
            self._average_model.to(pl_module.device)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._average_model = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # after training, a checkpoint's state_dict (the average) is what an evaluation loads
        if self._average_model is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
