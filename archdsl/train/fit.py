"""Train a spec: build, fit with Lightning, keep ``best.ckpt`` and ``last.ckpt``, report val and test metrics."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from archdsl.atomic import atomic_write_text
from archdsl.compiler.build import build_from_plan
from archdsl.errors import ArchDSLError, Problem, UsageError
from archdsl.planner import plan_model
from archdsl.spec.load import spec_to_data
from archdsl.spec.model import ModelSpec
from archdsl.train.checkpoint_io import AtomicCheckpointIO
from archdsl.train.data import DataRequest, make_datamodule
from archdsl.train.module import ClassificationModule, NonFiniteLossError
from archdsl.train.placement import Placement, spec_trainer_args
from archdsl.train.preempt import Preempted, StopRequested

__all__ = ["Abandoned", "FitResult", "TrainingError", "abandon", "epochs_completed", "fit"]

PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
BEST, LAST, METRICS = "best.ckpt", "last.ckpt", "metrics.csv"


class TrainingError(ArchDSLError):
    """Training failed (exit code 1), e.g. the loss became non-finite."""

    exit_code = 1


@dataclass(frozen=True)
class FitResult:
    val_acc: float
    val_loss: float
    test_acc: float
    epochs: int
    seconds: float
    params: int
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """The ``archdsl train --json`` object (metrics of ``best.ckpt``)."""
        return {
            "val/acc": self.val_acc,
            "val/loss": self.val_loss,
            "test/acc": self.test_acc,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "params": self.params,
            "checkpoint": self.checkpoint,
        }


class Abandoned(Exception):
    """A callback stopped the run to throw it away (a pruned trial): no final evaluation was done."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(f"abandoned after epoch {epoch}")


_ABANDONED, _EPOCHS = "fit/abandoned_after_epoch", "fit/epochs"
"""Keys in ``trainer.callback_metrics``, which Lightning carries back from spawned DDP ranks."""


def abandon(trainer: L.Trainer, epoch: int) -> None:
    """Stop at the end of this epoch and make :func:`fit` raise :class:`Abandoned` (call on every rank)."""
    trainer.callback_metrics[_ABANDONED] = torch.tensor(float(epoch))
    trainer.should_stop = True


class _EpochCount(Callback):
    """Record the epochs trained where the main process can read them, also after spawned ranks."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.callback_metrics[_EPOCHS] = torch.tensor(float(trainer.current_epoch + 1))


class _InitialCheckpoint(Callback):
    """Save ``last.ckpt`` before the first step, so a failure in epoch 0 still leaves a loadable one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            trainer.save_checkpoint(self.path)


def _quiet_lightning() -> None:
    """Silence Lightning's chatter; called inside ``warnings.catch_warnings`` so the filters stay scoped."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided.*")


class _CSVLogger(CSVLogger):
    """Lightning's CSV logger, writing ``hparams.yaml`` once: Lightning logs the hyperparameters again at the
    start of every stage (fit, validate, test), and each pure-Python YAML dump of the spec costs a search
    trial about 15 ms."""

    _logged = False

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        if not self._logged:
            super().log_hyperparams(*args, **kwargs)
            self._logged = True


class _QuietRanks(Callback):
    """Quiet Lightning in DDP-spawned ranks too: they start from a fresh interpreter, so the filters of
    :func:`fit` do not reach them; unpickling this callback there installs them (for the rank's lifetime)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _quiet_rank, ()


def _quiet_rank() -> _QuietRanks:
    _quiet_lightning()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return _QuietRanks()


def fit(spec: ModelSpec, out: str | Path, **kwargs: Any) -> FitResult:
    """Train ``spec`` into ``out`` (``metrics.csv``, ``best.ckpt``, ``last.ckpt``, ``result.json``).

    Keyword arguments: ``resume``, ``force``, ``allow_import``, ``progress``, ``callbacks``, ``test``,
    ``placement`` (a ``--device`` choice over the spec's accelerator and devices), ``resumable`` (False: no
    ``last.ckpt``, for runs nothing resumes, such as search trials, which restart from scratch). Several devices train
    with ``ddp_spawn``; the final validation and test then run in this process on one device.
    Raises :class:`Abandoned` when a callback abandoned the run (see :func:`abandon`), and
    :class:`~archdsl.train.preempt.Preempted` on SIGTERM or when a guard's callback stopped it.
    Problems found on the way (data that does not match the head, a missing dataset directory) are
    located in the spec's file.
    """
    try:
        with warnings.catch_warnings():
            _quiet_lightning()
            return _fit(spec, out, **kwargs)
    except SIGTERMException:  # Lightning's own SIGTERM handling stopped a loop
        raise Preempted("preempted") from None
    except StopRequested as stop:
        raise Preempted(stop.reason) from None
    except ArchDSLError as err:
        if spec.source is None:
            raise
        raise err.located(spec.source.locate) from None


def _fit(
    spec: ModelSpec,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    allow_import: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    test: bool = True,
    placement: Placement | None = None,
    resumable: bool = True,
) -> FitResult:
    out = Path(out)
    plan = plan_model(spec)  # a spec (or --set) the planner refuses leaves no directory behind
    last = out / LAST
    if resume and not last.is_file():
        raise UsageError.option("--resume", f"no {LAST} in '{out}' to continue from")
    if not resume and not force and ((out / BEST).exists() or last.exists()):
        raise UsageError.option(
            "--out",
            f"'{out}' already holds a training run; pass --resume to continue it or --force to start over",
        )
    t = spec.train
    if resume and (done := epochs_completed(last)) >= t.epochs:
        finished = _finished_result(out)
        if finished is not None:
            print(
                f"{out}: training finished ({done} of {t.epochs} epochs in {LAST}); nothing to resume", file=sys.stderr
            )
            return finished
    if not resume:
        for name in (BEST, LAST, METRICS, "result.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(t.seed, workers=True, verbose=False)
    module = ClassificationModule(build_from_plan(plan), spec_to_data(spec))  # planned once, above
    data = make_datamodule(
        DataRequest(t.data, spec.input.channels, spec.input.size, t.batch_size, t.seed, plan.output[0], allow_import)
    )
    checkpoint = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # Lightning's save_last copies only when the best improved; this one rewrites last.ckpt every epoch.
    latest = ModelCheckpoint(
        dirpath=out, filename=Path(LAST).stem, monitor=None, save_top_k=1, enable_version_counter=False
    )
    resume_points = [latest, _InitialCheckpoint(last)] if resumable else []
    accelerator, devices, processes = placement.trainer_args(t) if placement else spec_trainer_args(t)
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=t.epochs,
        accelerator=accelerator,
        devices=devices,
        strategy="ddp_spawn" if processes > 1 else "auto",
        precision=PRECISION[t.precision],  # type: ignore[arg-type]
        gradient_clip_val=t.grad_clip,
        logger=_CSVLogger(out, name="", version=""),
        callbacks=[checkpoint, *resume_points, _EpochCount(), _QuietRanks(), *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    # Lightning's CSV logger starts a fresh metrics.csv in a non-empty directory; keep the history.
    history = _read_metrics(out / METRICS) if resume else []
    start = time.perf_counter()
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last if resume else None)
    except SystemExit as stop:
        if isinstance(stop, SIGTERMException):
            raise  # fit() turns it into Preempted, here and in the final evaluation alike
        # Lightning turns Ctrl-C into sys.exit after a graceful shutdown: say what happened.
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    except NonFiniteLossError as err:
        kept = f"; the last good checkpoint is kept at {last}" if last.is_file() else ""  # trials keep none
        raise TrainingError(
            Problem(
                "train.optimizer.lr",
                f"training stopped: {err}{kept} (lower the learning rate {t.optimizer.lr:g} or set train.grad_clip)",
            )
        ) from None
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after an interrupt
        if history:
            _prepend_metrics(out / METRICS, history)
    seconds = time.perf_counter() - start
    if _ABANDONED in trainer.callback_metrics:
        raise Abandoned(int(trainer.callback_metrics[_ABANDONED]))
    epochs = int(trainer.callback_metrics.get(_EPOCHS, trainer.current_epoch))
    best = checkpoint.best_model_path
    if not best:  # no epoch gave a val/acc to rank (never finite): the run's result is its last weights
        if not resumable:
            trainer.save_checkpoint(last)
        best = str(last)
    if processes > 1:  # evaluate once, here, on the first device: no spawn, no padded distributed sampler
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=PRECISION[t.precision],  # type: ignore[arg-type]
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
    val = trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False)[0]
    test_acc = float("nan")
    if test:
        # validate() above restored the best weights into the module: test them without loading the file again
        test_acc = float(trainer.test(module, datamodule=data, ckpt_path=None, verbose=False)[0]["test/acc"])
    result = FitResult(
        val_acc=float(val["val/acc"]),
        val_loss=float(val["val/loss"]),
        test_acc=test_acc,
        epochs=epochs,
        seconds=round(seconds, 2),
        params=plan.params,
        checkpoint=str(Path(best).resolve()),
    )
    atomic_write_text(out / "result.json", json.dumps(result.to_json(), indent=2) + "\n")
    return result


def epochs_completed(checkpoint: Path) -> int:
    """Epochs whose training and validation a Lightning checkpoint holds (0 for the one saved before step 1)."""
    data = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    last_batch_done = bool(data["loops"]["fit_loop"]["epoch_loop.batch_progress"].get("is_last_batch", False))
    return int(data["epoch"]) + int(last_batch_done)


def _finished_result(out: Path) -> FitResult | None:
    """The result a finished run wrote, or None when it was cut before writing it."""
    try:
        data = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return FitResult(
        val_acc=data["val/acc"],
        val_loss=data["val/loss"],
        test_acc=data["test/acc"],
        epochs=data["epochs"],
        seconds=data["seconds"],
        params=data["params"],
        checkpoint=data["checkpoint"],
    )


def _read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _prepend_metrics(path: Path, history: list[dict[str, str]]) -> None:
    """Write ``history`` (the rows before the resume point) followed by the rows of this run."""
    rows = _read_metrics(path)
    first_step = min((int(r["step"]) for r in rows if r.get("step")), default=None)
    kept = [r for r in history if first_step is None or int(r.get("step") or 0) < first_step]
    keys = sorted({k for r in (*kept, *rows) for k in r})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows([*kept, *rows])
    atomic_write_text(path, buffer.getvalue())
