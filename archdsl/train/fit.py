"""Train a spec: build, fit with Lightning, keep ``best.ckpt`` and ``last.ckpt``, report val and test metrics."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from archdsl.atomic import atomic_write_text
from archdsl.compiler.build import build_from_plan
from archdsl.errors import ArchDSLError, Problem, UsageError
from archdsl.plan.layout import channels_last
from archdsl.planner import PlannedSpec
from archdsl.spec.load import spec_to_data
from archdsl.train.callbacks import ABANDONED, EPOCHS, CudaSpeed, EpochCount, InitialCheckpoint, RestoreSigint, abandon
from archdsl.train.checkpoint_io import AtomicCheckpointIO
from archdsl.train.compiled import fresh_compiler
from archdsl.train.data import DataRequest, make_datamodule
from archdsl.train.environment import trial_environment
from archdsl.train.history import METRICS
from archdsl.train.loggers import LOGGERS, TrackedRun, logger_files, logs_of, make_loggers, require_extras
from archdsl.train.module import ClassificationModule, NonFiniteLossError
from archdsl.train.placement import Placement, spec_trainer_args
from archdsl.train.precision import resolve_precision, trains_on
from archdsl.train.preempt import Preempted, StopRequested
from archdsl.train.quiet import QuietRanks, quiet_lightning
from archdsl.train.recipe.ema import EmaWeights
from archdsl.weights.apply import load_init

__all__ = ["Abandoned", "FitResult", "TrainingError", "abandon", "epochs_completed", "fit"]

BEST, LAST = "best.ckpt", "last.ckpt"


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
    logs: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Where each of ``train.loggers`` put the run: ``csv`` (``metrics.csv``), ``tensorboard`` (its directory),
    ``mlflow`` (the tracking URI) with ``mlflow_experiment`` and ``mlflow_run`` (their ids)."""

    def to_json(self) -> dict[str, Any]:
        """The ``archdsl train --json`` object (metrics of ``best.ckpt``, and where the logs went)."""
        return {
            "val/acc": self.val_acc,
            "val/loss": self.val_loss,
            "test/acc": self.test_acc,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "params": self.params,
            "checkpoint": self.checkpoint,
            "logs": dict(self.logs),
        }


class Abandoned(Exception):
    """A callback stopped the run to throw it away (a pruned trial): no final evaluation was done."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(f"abandoned after epoch {epoch}")


def fit(
    planned: PlannedSpec,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    allow_import: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    test: bool = True,
    placement: Placement | None = None,
    tracking: TrackedRun | None = None,
) -> FitResult:
    """Train a planned spec into ``out`` (``metrics.csv``, ``best.ckpt``, ``last.ckpt``, ``result.json``).

    ``resume`` continues from ``last.ckpt``; ``force`` starts over in a directory that holds a run;
    ``allow_import`` permits ``train.data.name=custom``; ``test`` evaluates ``best.ckpt`` on the test split;
    ``placement`` is a ``--device`` choice over the spec's accelerator and devices; ``tracking`` names the run to
    ``train.loggers`` (default: the spec's name, a default store in ``out``; :mod:`archdsl.train.loggers`).
    Several devices train with ``ddp_spawn``; the final validation and test then run in this process on one
    device. ``train.precision`` ``auto`` is resolved for the device (:mod:`archdsl.train.precision`); on CUDA,
    unless ``train.deterministic``, float32 matmuls use TF32 and cuDNN benchmarks its kernels
    (:class:`~archdsl.train.callbacks.CudaSpeed`).
    ``train.init`` is read and matched before ``out`` is cleared and copied into the freshly built model (not on a
    resume: the run's own checkpoint wins). With ``train.compile`` the compiler starts afresh
    (``torch._dynamo.reset``): one compile per trial.
    Raises :class:`Abandoned` when a callback abandoned the run (see :func:`abandon`), and
    :class:`~archdsl.train.preempt.Preempted` on SIGTERM or when a guard's callback stopped it.
    Problems found on the way (data that does not match the head, a missing dataset directory) are
    located in the spec's file.
    """
    spec, plan, t = planned.spec, planned.plan, planned.spec.train
    out = Path(out)
    last = out / LAST
    with _errors_located(planned), quiet_lightning(), _torch_flags_kept():
        require_extras(t)  # a logger whose extra is missing is refused before anything is made
        accelerator, devices, processes = placement.trainer_args(t) if placement else spec_trainer_args(t)
        precision = resolve_precision(t, accelerator, devices)
        # the dataset is checked (a missing directory or extra) before the run's directory is made or cleared
        data = make_datamodule(
            DataRequest(
                t.data,
                spec.input.channels,
                spec.input.size,
                t.batch_size,
                t.seed,
                plan.output[0],
                allow_import,
                augment=t.augment,
            )
        )
        # read and matched before the run's directory is cleared; a resumed run's checkpoint wins over the file
        init = load_init(plan, t.init) if t.init is not None and not resume else None
        finished = _prepare(out, t.epochs, resume=resume, force=force)
        if finished is not None:
            return finished
        if t.compile:
            fresh_compiler()
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = build_from_plan(plan)
        if init is not None:
            init.copy_into(model)  # after the seeded fresh init: what train.init leaves out keeps it
        model.use_layout(channels_last(plan.nodes(), trains_on(accelerator)))  # the plan's is the CPU's choice
        module = ClassificationModule(model, spec_to_data(spec))
        best_checkpoint = ModelCheckpoint(
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
        loggers = make_loggers(out, t, tracking or TrackedRun(spec.name, spec.name, out), resume=resume)
        trainer = L.Trainer(
            default_root_dir=out,
            max_epochs=t.epochs,
            accelerator=accelerator,
            devices=devices,
            strategy="ddp_spawn" if processes > 1 else "auto",
            precision=precision,  # type: ignore[arg-type]
            deterministic=t.deterministic,
            # compiled: the final evaluation under no_grad, as the validation during fit, so one graph serves both
            inference_mode=not t.compile,
            gradient_clip_val=t.grad_clip,
            logger=loggers,  # csv first: Lightning's log_dir is the run's directory
            callbacks=[
                best_checkpoint,
                latest,
                InitialCheckpoint(last),
                EpochCount(),
                QuietRanks(),
                RestoreSigint(),
                CudaSpeed(t.deterministic),
                *([EmaWeights(t.ema)] if t.ema is not None else []),
                *callbacks,
            ],
            plugins=[AtomicCheckpointIO(), trial_environment(processes)],
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=10,
        )
        start = time.perf_counter()
        _run(trainer, module, data, last, resume=resume, lr=t.optimizer.lr, deterministic=t.deterministic)
        seconds = time.perf_counter() - start
        if ABANDONED in trainer.callback_metrics:
            raise Abandoned(int(trainer.callback_metrics[ABANDONED]))
        epochs = int(trainer.callback_metrics.get(EPOCHS, trainer.current_epoch))
        best = best_checkpoint.best_model_path
        if not best:  # no epoch gave a val/acc to rank (never finite): the run's result is its last weights
            best = str(last)
        if processes > 1:  # evaluate once, here, on the first device: no spawn, no padded distributed sampler
            trainer = L.Trainer(
                accelerator=accelerator,
                devices=1,
                precision=precision,  # type: ignore[arg-type]
                deterministic=t.deterministic,
                inference_mode=not t.compile,
                callbacks=[CudaSpeed(t.deterministic)],
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
                plugins=[trial_environment(1)],
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
            logs=logs_of(t.loggers, loggers),
        )
        atomic_write_text(out / "result.json", json.dumps(result.to_json(), indent=2) + "\n")
        return result


@contextlib.contextmanager
def _errors_located(planned: PlannedSpec) -> Iterator[None]:
    """Lightning's SIGTERM handling and a guard's stop become :class:`Preempted`; archdsl's own problems are
    located in the spec's file."""
    try:
        yield
    except SIGTERMException:  # Lightning's own SIGTERM handling stopped a loop
        raise Preempted("preempted") from None
    except StopRequested as stop:
        raise Preempted(stop.reason) from None
    except ArchDSLError as err:
        if planned.spec.source is None:
            raise
        raise err.located(planned.spec.source.locate) from None


@contextlib.contextmanager
def _torch_flags_kept() -> Iterator[None]:
    """Lightning sets torch's deterministic-algorithms flag and ``cudnn.benchmark`` for ``train.deterministic``
    when a Trainer is made and leaves them set; a run puts back the process's own after it."""
    algorithms = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(algorithms[0], warn_only=algorithms[1])
        torch.backends.cudnn.benchmark = benchmark


def _prepare(out: Path, epochs: int, *, resume: bool, force: bool) -> FitResult | None:
    """Check ``out`` against ``resume`` and ``force`` and clear it for a new run; the result of a finished run
    when there is nothing to resume."""
    last = out / LAST
    if resume and not last.is_file():
        raise UsageError.option("--resume", f"no {LAST} in '{out}' to continue from")
    if not resume and not force and ((out / BEST).exists() or last.exists()):
        raise UsageError.option(
            "--out",
            f"'{out}' already holds a training run; pass --resume to continue it or --force to start over",
        )
    if resume and (done := epochs_completed(last)) >= epochs:
        finished = _finished_result(out)
        if finished is not None:
            print(f"{out}: training finished ({done} of {epochs} epochs in {LAST}); nothing to resume", file=sys.stderr)
            return finished
    if not resume:  # what an earlier run wrote, every logger's included (an MLflow store keeps its runs)
        for name in dict.fromkeys((BEST, LAST, METRICS, "result.json", *logger_files(LOGGERS.names()))):
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name)
            else:
                (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return None


def _run(
    trainer: L.Trainer,
    module: L.LightningModule,
    data: L.LightningDataModule,
    last: Path,
    *,
    resume: bool,
    lr: float,
    deterministic: bool,
) -> None:
    """``trainer.fit``, with Lightning's ways of stopping told apart: Ctrl-C is a ``KeyboardInterrupt``
    again, a non-finite loss a located :class:`TrainingError`, and so is an operation without a deterministic
    implementation in a ``train.deterministic`` run."""
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
        kept = f"; the last good checkpoint is kept at {last}" if last.is_file() else ""
        raise TrainingError(
            Problem(
                "train.optimizer.lr",
                f"training stopped: {err}{kept} (lower the learning rate {lr:g} or set train.grad_clip)",
            )
        ) from None
    except RuntimeError as err:
        if not deterministic or _NONDETERMINISTIC not in str(err):
            raise
        what = str(err).split(_NONDETERMINISTIC)[0].strip()
        raise TrainingError(
            Problem(
                "train.deterministic",
                f"training stopped: {what} has no deterministic implementation on this device; "
                "set train.deterministic: false",
            )
        ) from None


_NONDETERMINISTIC = "does not have a deterministic implementation"
"""What torch says of an operation it cannot run under ``torch.use_deterministic_algorithms(True)``."""


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
        logs=data.get("logs", {}),
    )
