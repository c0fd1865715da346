"""The classification system: receives a backbone, never builds one."""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from archdsl.spec.train import TrainSpec
from archdsl.train.compiled import CompiledForward
from archdsl.train.finite import LossWatch, NonFiniteLossError
from archdsl.train.recipe.mix import mix_of

__all__ = ["NORMS", "ClassificationModule", "NonFiniteLossError", "no_decay_names", "param_groups"]

NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # the batch and instance norms, lazy and synchronised ones included
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
)
"""Normalisation layers: every parameter of one (its scale and shift) is trained without weight decay."""


def no_decay_names(module: nn.Module) -> set[str]:
    """The names of ``module``'s own parameters (not its children's) that get no weight decay, by their role:
    all of a normalisation layer's (:data:`NORMS`), a ``bias``, and the ones the module lists in its
    ``NO_WEIGHT_DECAY`` class attribute (position embeddings, class tokens, relative-position tables, gates)."""
    own = [name for name, _ in module.named_parameters(recurse=False)]
    if isinstance(module, NORMS):
        return set(own)
    declared = set(getattr(module, "NO_WEIGHT_DECAY", ()))
    return {name for name in own if name == "bias" or name in declared}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay conv/linear weights only: not norms, biases, embeddings or relative-position tables
    (:func:`no_decay_names` of the module that owns each parameter), in ``model.parameters()`` order."""
    skipped: set[int] = set()
    for module in model.modules():
        names = no_decay_names(module)
        skipped.update(id(p) for name, p in module.named_parameters(recurse=False) if name in names)
    trained = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trained if id(p) not in skipped], "weight_decay": weight_decay},
        {"params": [p for p in trained if id(p) in skipped], "weight_decay": 0.0},
    ]


class ClassificationModule(L.LightningModule):
    """Cross-entropy training of ``backbone``; logs ``train/loss_step``, ``train/loss_epoch``, ``val/loss``,
    ``val/acc`` (+ top-5). With mixup or CutMix in ``train.augment`` a training batch is mixed here and the loss
    takes its soft targets (label smoothing folded in, :mod:`archdsl.train.recipe.mix`); validation and test
    batches are never mixed.

    ``spec`` is the fully resolved model spec as plain JSON-compatible data (``spec_to_data``); it is
    stored in the hyper-parameters, so every checkpoint says exactly what it holds and loads with
    ``torch.load(weights_only=True)``.

    No step reads the device: the loss's finiteness is recorded on it (:class:`~archdsl.train.finite.LossWatch`)
    and checked at Lightning's logging interval, at the last batch of each epoch and before a checkpoint is
    written, raising :class:`NonFiniteLossError` for the step where the loss first became NaN or infinite; the
    per-step loss is logged without a cross-device reduction (the epoch mean is reduced once per epoch).
    With ``train.compile`` the backbone's forward is compiled in :meth:`configure_model`, in the process (every
    DDP rank) that runs it, and never pickled (:mod:`archdsl.train.compiled`).
    """

    def __init__(self, backbone: nn.Module, spec: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"spec": spec})
        self.backbone = backbone
        self.train_spec = TrainSpec.model_validate(spec["train"])
        self.num_classes = int(spec["head"]["num_classes"])
        self._mix = mix_of(self.train_spec.augment, self.num_classes, self.train_spec.label_smoothing)
        # the compiled forward is a function, not a submodule: checkpoints keep the plain ``backbone.*`` keys
        self._compiled: CompiledForward | None = None
        self._loss_watch = LossWatch()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_compiled"] = None  # a compiled function does not pickle: each process compiles its own
        return state

    def configure_model(self) -> None:
        """Compile the backbone's forward in this process (every rank, every fit, validate and test; once)."""
        if self.train_spec.compile and self._compiled is None:
            self._compiled = CompiledForward(self.backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._compiled(x) if self._compiled is not None else self.backbone(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self._mix is not None:
            x, targets = self._mix(x, y)
            loss = F.cross_entropy(self(x), targets)
        else:
            loss = F.cross_entropy(self(x), y, label_smoothing=self.train_spec.label_smoothing)
        self._loss_watch.record(loss, self.current_epoch, batch_idx, self.global_step)
        n = len(y)
        # the step's value on this device only (no all-reduce per step); the epoch mean over every device
        self.log("train/loss_step", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/loss_epoch", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def on_train_start(self) -> None:
        self._loss_watch = LossWatch()
        self._replan_schedule()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Check the loss where the host reads the device anyway: Lightning's logging interval, the epoch's end."""
        trainer = self.trainer
        every = int(getattr(trainer, "log_every_n_steps", 0))  # set by Lightning's logger connector, untyped
        if trainer.is_last_batch or trainer.should_stop or (every > 0 and trainer.global_step % every == 0):
            self._loss_watch.check()

    def on_train_epoch_end(self) -> None:
        self._loss_watch.check()

    def on_train_end(self) -> None:
        self._loss_watch.check()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._loss_watch.check()  # never write weights trained past a non-finite loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], prefix: str) -> None:
        x, y = batch
        logits = self(x)
        n = len(y)
        # sync_dist: under DDP every rank sees a shard; the epoch value is their mean (a no-op on one device)
        bar = prefix == "val"
        self.log(f"{prefix}/loss", F.cross_entropy(logits, y), batch_size=n, prog_bar=bar, sync_dist=True)
        self.log(f"{prefix}/acc", (logits.argmax(1) == y).float().mean(), batch_size=n, prog_bar=bar, sync_dist=True)
        if self.num_classes > 5:
            top5 = (logits.topk(5, dim=1).indices == y[:, None]).any(1).float().mean()
            self.log(f"{prefix}/acc_top5", top5, batch_size=n, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        t = self.train_spec
        groups = param_groups(self.backbone, t.optimizer.weight_decay)
        if t.optimizer.name == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=t.optimizer.lr, momentum=t.optimizer.momentum, nesterov=t.optimizer.nesterov
            )
        else:
            opt = torch.optim.AdamW(groups, lr=t.optimizer.lr, betas=t.optimizer.betas)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, round(t.schedule.warmup_epochs * total / max(1, self.trainer.max_epochs or 1)))
        self._planned = (total, warmup)  # a resumed run's checkpoint overwrites the schedule's own copy
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, _Schedule(total, warmup, t.schedule.name, t.schedule.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _replan_schedule(self) -> None:
        """A resumed run restores the schedule it was planned with; when it now trains for more epochs, the
        schedule is planned again over the new total from the step it stands at (the warm-up, already done,
        is not repeated; cosine goes on to the new end), and one line says so."""
        planned: tuple[int, int] | None = getattr(self, "_planned", None)
        configs = self.trainer.lr_scheduler_configs
        if planned is None or not configs or self.trainer.global_step == 0:
            return
        scheduler = configs[0].scheduler
        restored = next((f for f in getattr(scheduler, "lr_lambdas", ()) if isinstance(f, _Schedule)), None)
        if restored is None or restored.total == planned[0]:
            return
        was = restored.total
        restored.total, restored.warmup = planned
        step = scheduler.last_epoch  # type: ignore[union-attr]
        for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):  # type: ignore[union-attr]
            group["lr"] = base * restored(step)
        if self.trainer.is_global_zero:
            print(
                f"resuming at step {step}: the learning-rate schedule ({restored.name}) was planned over {was} steps "
                f"and now runs over {planned[0]} ({self.trainer.max_epochs} epochs)",
                file=sys.stderr,
                flush=True,
            )


class _Schedule:
    """Linear warm-up to 1, then cosine (or constant) to ``floor``; picklable for checkpoints."""

    def __init__(self, total: int, warmup: int, name: str, floor: float) -> None:
        self.total, self.warmup, self.name, self.floor = total, warmup, name, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.name == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
