"""Training loggers by name (``train.loggers``): what each needs installed, and how it is made for a run.

``csv`` is always first and writes ``metrics.csv`` (:class:`~archdsl.train.history.HistoryLogger`);
``tensorboard`` and ``mlflow`` are Lightning's ``TensorBoardLogger`` and ``MLFlowLogger`` and need the
``tracking`` extra. Importing this module imports neither torch nor a tracker: a logger's factory imports
what it needs when a run makes it, and :func:`require_extras` only asks whether the modules are installed,
so ``archdsl validate`` refuses a spec naming a logger whose extra is missing without loading anything.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import Location, Problem, SpecError
from archdsl.registry import Registry

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from archdsl.spec.train import TrainSpec

__all__ = [
    "LOGGERS",
    "TRACKING_EXTRA",
    "LoggerKind",
    "TrackedRun",
    "logger_files",
    "logs_of",
    "make_loggers",
    "missing_extra",
    "require_extras",
]

TRACKING_EXTRA = "pip install 'archdsl[tracking]'"
"""How to install the optional extra of the ``tensorboard`` and ``mlflow`` loggers."""


@dataclass(frozen=True)
class TrackedRun:
    """What the loggers are told of a run besides its spec and metrics."""

    name: str
    """The run's name (MLflow's run name): the spec's name, or ``trial N`` in a search."""
    experiment: str
    """The experiment when the spec names none (``train.mlflow.experiment``): the spec's or the study's name."""
    store: Path
    """Where a default local store lies (MLflow's ``mlflow.db``): the run's directory, or the search's."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags of the run (MLflow): a search's study, trial number and parameters, its parent run."""


@dataclass(frozen=True)
class LoggerKind:
    """A logger: the modules its extra installs, the files it owns in the run's directory, how it is made."""

    modules: tuple[str, ...]
    """Top-level modules it imports (checked installed, not imported, by :func:`require_extras`)."""
    extra: str | None
    """The optional extra that installs them (``None``: nothing beyond archdsl's own requirements)."""
    files: tuple[str, ...]
    """Files and directories of the run's directory it writes, removed when a run starts over."""
    make: Callable[[Path, TrainSpec, TrackedRun, bool], Logger]
    """``make(out, train, run, resume)``: the Lightning logger (``resume``: a run continued from ``last.ckpt``)."""
    where: Callable[[Logger], dict[str, str]]
    """Where the logger put the run (``archdsl train`` prints it, ``--json`` holds it under ``logs``)."""


def _csv(out: Path, train: TrainSpec, run: TrackedRun, resume: bool) -> Logger:
    from archdsl.train.history import HistoryLogger

    return HistoryLogger(out, resume=resume)


def _csv_where(logger: Logger) -> dict[str, str]:
    from archdsl.train.history import METRICS

    return {"csv": str((Path(logger.log_dir or ".") / METRICS).resolve())}


TENSORBOARD_DIR = "tensorboard"


def _tensorboard(out: Path, train: TrainSpec, run: TrackedRun, resume: bool) -> Logger:
    from lightning.pytorch.loggers import TensorBoardLogger

    # version "": the event files lie in DIR/tensorboard itself; a resumed run adds its own file there
    return TensorBoardLogger(out, name=TENSORBOARD_DIR, version="", default_hp_metric=False)


def _tensorboard_where(logger: Logger) -> dict[str, str]:
    return {"tensorboard": str(Path(logger.log_dir or ".").resolve())}


def _mlflow(out: Path, train: TrainSpec, run: TrackedRun, resume: bool) -> Logger:
    from archdsl.train.mlflow_runs import SpecMLFlowLogger

    return SpecMLFlowLogger(out, train.mlflow, run, resume=resume)


def _mlflow_where(logger: Logger) -> dict[str, str]:
    from archdsl.train.mlflow_runs import SpecMLFlowLogger

    assert isinstance(logger, SpecMLFlowLogger)
    return logger.where()


LOGGERS: Registry[LoggerKind] = Registry("logger")
"""``train.loggers`` names (:data:`archdsl.spec.train.LoggerName`) -> kinds."""
LOGGERS.register("csv", LoggerKind((), None, ("metrics.csv",), _csv, _csv_where))
LOGGERS.register(
    "tensorboard", LoggerKind(("tensorboard",), "tracking", (TENSORBOARD_DIR,), _tensorboard, _tensorboard_where)
)
LOGGERS.register("mlflow", LoggerKind(("mlflow",), "tracking", ("mlflow_run.json",), _mlflow, _mlflow_where))


def missing_extra(name: str) -> str | None:
    """Why logger ``name`` cannot be made here (a module of its extra is not installed), or None."""
    kind = LOGGERS.get(name)
    for module in kind.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken installation, or a module stubbed without a spec
            found = False
        if not found:
            install = TRACKING_EXTRA if kind.extra == "tracking" else f"pip install 'archdsl[{kind.extra}]'"
            return f"'{name}' needs the {kind.extra} extra: {install}, got no module named {module}"
    return None


def require_extras(train: TrainSpec | None, locate: Callable[[str], Location] | None = None) -> None:
    """Refuse ``train.loggers`` naming a logger whose extra is not installed (one problem per logger), located
    with ``locate`` when given; imports nothing."""
    if train is None:
        return
    problems = [
        Problem(path, why, locate(path) if locate else None)
        for i, name in enumerate(train.loggers)
        if (why := missing_extra(name)) is not None and (path := f"train.loggers.{i}")
    ]
    if problems:
        raise SpecError(problems)


def make_loggers(out: Path, train: TrainSpec, run: TrackedRun, *, resume: bool) -> list[Logger]:
    """The Lightning loggers of ``train.loggers``, in order (``csv`` first)."""
    return [LOGGERS.get(name).make(out, train, run, resume) for name in train.loggers]


def logger_files(names: Sequence[str]) -> tuple[str, ...]:
    """What the loggers ``names`` write in a run's directory (cleared when a run starts over)."""
    return tuple(f for name in names for f in LOGGERS.get(name).files)


def logs_of(names: Sequence[str], loggers: Sequence[Logger]) -> dict[str, str]:
    """Where each logger put the run, merged (``archdsl train`` prints it)."""
    where: dict[str, str] = {}
    for name, logger in zip(names, loggers, strict=True):
        where.update(LOGGERS.get(name).where(logger))
    return where
