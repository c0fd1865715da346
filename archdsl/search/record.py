"""A trial's and a study's record in the storage, typed: the only reader and writer of their attributes.

Optuna keeps what archdsl knows of a trial (why it was rejected, where it ran, its metrics and checkpoint)
as string-keyed ``user_attrs``; this module names every key once (:class:`Attr`), writes them through
:class:`TrialWriter` and reads them back as a frozen :class:`TrialRecord`. :func:`outcome` tells what a
finished (or running) trial means, the one classification the budget, the progress line, ``status`` and
the report share. Studies written by earlier releases hold the same keys and load unchanged.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from archdsl.errors import ArchDSLError
from archdsl.search.space.definition import SearchDefinition
from archdsl.spec.load import spec_from_text
from archdsl.spec.model import ModelSpec

__all__ = [
    "INTERRUPTED",
    "OUTCOMES",
    "PREEMPTED",
    "Attr",
    "Outcome",
    "StudyAttr",
    "StudyRecord",
    "TrialRecord",
    "TrialWriter",
    "epoch_values",
    "outcome",
    "promoted_attrs",
    "record_budget",
    "retry_history",
    "rewrite_search",
    "was_queued",
    "without_record",
    "write_study",
]

Outcome = Literal[
    "complete",
    "pruned",
    "rejected",
    "over_budget",
    "preempted",
    "interrupted",
    "stale",
    "fault",
    "bug",
    "running",
    "waiting",
    "screened",
    "screening",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


class Attr(str, Enum):
    """The ``user_attrs`` keys of a trial."""

    # refused before training
    REJECTED = "rejected"
    REJECT_MS = "reject_ms"
    OVER_BUDGET = "over_budget"
    REASON = "reason"
    # the worker that runs it
    HOST = "host"
    PID = "pid"
    PID_STARTED = "pid_started"
    WORKER = "worker"
    VERSIONS = "versions"
    DEVICE = "device"
    # the planned model
    PARAMS = "params"
    FLOPS = "flops"
    LATENCY_MS = "latency_ms"
    LATENCY_TIMING = "latency_timing"
    """How ``latency_ms`` was measured: ``{"runtime", "device", "batch", "threads", "warmup", "repeats"}``
    (:class:`archdsl.compiler.latency.Timing`)."""
    SPEC = "spec"
    # training
    EPOCH = "epoch"
    EPOCHS = "epochs"
    VAL_ACC = "val/acc"
    VAL_LOSS = "val/loss"
    TEST_ACC = "test/acc"
    SECONDS = "seconds"
    CHECKPOINT = "checkpoint"
    CHECKPOINT_HOST = "checkpoint_host"
    LAST_CHECKPOINT = "last_checkpoint"
    """The resumable checkpoint of its latest epoch (written on ``host``), which a retry continues from."""
    RESUMED = "resumed"
    """A retry that continued a lost trial: ``{"trial": N, "epoch": E, "checkpoint": PATH}``."""
    STARTED_OVER = "started_over"
    """Why a retry started from scratch (no readable checkpoint of the trial it retries)."""
    COST_EPOCHS = "cost_epochs"
    """Epochs trained, in epochs over the whole training split at the trial's input size
    (:func:`archdsl.search.fidelity.cost_epochs`), summed over its rungs."""
    RUNGS = "rungs"
    """The rungs of ``fidelity: data | resolution`` that ran or were skipped, in order
    (:mod:`archdsl.search.fidelity`)."""
    # failures
    ERROR = "error"
    TRACEBACK = "traceback"
    FAULT = "fault"
    BUG = "bug"
    # zero-cost proxies
    SCREENED = "screened"
    """A proposal scored by the prescreen's proxy and not trained: ``{"proxy": NAME, "score": S, "pool": P}``
    (score None when it was refused before scoring); never counted against the budget."""
    PROMOTED = "promoted"
    """A trial queued by the prescreen: ``{"from": N, "proxy": NAME, "score": S}``, N the screened proposal."""
    PROXIES = "proxies"
    """Every proxy's score of the untrained architecture, ``{name: score}`` (what ``report`` correlates)."""


class StudyAttr(str, Enum):
    """The ``user_attrs`` keys of a study."""

    SEARCH = "archdsl_search"
    """The search definition and base spec as data (:meth:`SearchSpace.to_data`)."""
    OUT_DIR = "archdsl_out"
    VERSIONS = "archdsl_versions"
    """The versions of the process that created the study; each trial records its worker's."""
    FINGERPRINT = "archdsl_fingerprint"
    BUDGET = "archdsl_budget"
    """The trial budget of the latest run (``budget.trials``, or ``--trials``), which ``status`` counts against."""


RETRY_HISTORY = "retry_history"
"""The system attribute in which Optuna's ``RetryHeartbeatStaleTrialCallback`` records the trials retried."""
PREEMPTED, INTERRUPTED = "preempted", "interrupted"
"""The reasons of trials handed back on SIGTERM and Ctrl-C."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def retry_history(trial: FrozenTrial) -> list[int]:
    """Numbers of the trials this one retries, oldest first (what Optuna's
    ``RetryHeartbeatStaleTrialCallback`` records; also used for preempted and interrupted trials)."""
    history = trial.system_attrs.get(RETRY_HISTORY, [])
    return [int(n) for n in history] if isinstance(history, list) else []


def epoch_values(trial: FrozenTrial) -> dict[int, float]:
    """What ``trial`` reported during training, keyed by epochs trained (:mod:`archdsl.search.pruning`). A trial
    of an earlier release reported at the zero-based epoch index (its steps start at 0): shifted by one here."""
    shift = 1 if 0 in trial.intermediate_values else 0
    return {step + shift: value for step, value in trial.intermediate_values.items()}


def was_queued(trial: FrozenTrial) -> bool:
    """Taken from the study's queue (``enqueue_trial``: a promoted proposal, or a retry), not sampled."""
    return "fixed_params" in trial.system_attrs or bool(retry_history(trial))


@dataclass(frozen=True)
class TrialRecord:
    """What archdsl recorded of one trial, typed; absent values are None."""

    number: int
    state: TrialState
    rejected: bool = False
    """Refused before training (a shape rule or a budget limit); the trial is PRUNED."""
    reject_ms: float | None = None
    over_budget: bool = False
    """Started after other workers took the last budget slot; it did nothing."""
    reason: str | None = None
    host: str | None = None
    pid: int | None = None
    pid_started: int | None = None
    worker: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    device: str | None = None
    params: int | None = None
    """Model parameters (the plan's count)."""
    flops: int | None = None
    latency_ms: float | None = None
    latency_timing: Mapping[str, Any] = field(default_factory=dict)
    """The runtime and settings ``latency_ms`` was measured with (empty where it was not, or before they were
    recorded: eager on the trial's device)."""
    spec: Mapping[str, Any] | None = None
    """The resolved spec it trained, as data."""
    epoch: int = 0
    """Epochs finished so far (reported by the pruning callback while it runs)."""
    epochs: int | None = None
    """Epochs trained (when it finished or was pruned)."""
    val_acc: float | None = None
    val_loss: float | None = None
    test_acc: float | None = None
    seconds: float | None = None
    checkpoint: str | None = None
    checkpoint_host: str | None = None
    last_checkpoint: str | None = None
    """Its resumable checkpoint (the latest epoch's), on ``host``'s filesystem."""
    resumed_from: int | None = None
    """The lost trial a retry continued, at epoch ``resumed_epoch``."""
    resumed_epoch: int | None = None
    started_over: str | None = None
    """Why a retry trained from scratch."""
    error: str | None = None
    traceback: str | None = None
    fault: str | None = None
    """The kind of training fault (:mod:`archdsl.search.faults`)."""
    bug: bool = False
    retry_of: tuple[int, ...] = ()
    """The trials this one retries, oldest first."""
    screened: bool = False
    """A proposal the prescreen scored (or refused) without training it."""
    screen_score: float | None = None
    """Its proxy score (screened), or the score that promoted it (a prescreened trial)."""
    screen_pool: int | None = None
    """The trial number that opened its screening pool."""
    promoted_from: int | None = None
    """The screened proposal this trial trains."""
    proxies: Mapping[str, float] = field(default_factory=dict)
    """Zero-cost proxy scores of the untrained architecture."""

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        a = trial.user_attrs
        spec = a.get(Attr.SPEC.value)
        versions = a.get(Attr.VERSIONS.value)
        resumed = a.get(Attr.RESUMED.value)
        resumed = resumed if isinstance(resumed, dict) else {}
        screened, promoted = a.get(Attr.SCREENED.value), a.get(Attr.PROMOTED.value)
        screen = screened if isinstance(screened, dict) else promoted if isinstance(promoted, dict) else {}
        proxies = a.get(Attr.PROXIES.value)
        return cls(
            number=trial.number,
            state=trial.state,
            rejected=bool(a.get(Attr.REJECTED.value)),
            reject_ms=_float(a.get(Attr.REJECT_MS.value)),
            over_budget=bool(a.get(Attr.OVER_BUDGET.value)),
            reason=_str(a.get(Attr.REASON.value)),
            host=_str(a.get(Attr.HOST.value)),
            pid=_int(a.get(Attr.PID.value)),
            pid_started=_int(a.get(Attr.PID_STARTED.value)),
            worker=_str(a.get(Attr.WORKER.value)),
            versions=dict(versions) if isinstance(versions, dict) else {},
            device=_str(a.get(Attr.DEVICE.value)),
            params=_int(a.get(Attr.PARAMS.value)),
            flops=_int(a.get(Attr.FLOPS.value)),
            latency_ms=_float(a.get(Attr.LATENCY_MS.value)),
            latency_timing=dict(timing) if isinstance(timing := a.get(Attr.LATENCY_TIMING.value), dict) else {},
            spec=spec if isinstance(spec, dict) else None,
            epoch=_int(a.get(Attr.EPOCH.value)) or 0,
            epochs=_int(a.get(Attr.EPOCHS.value)),
            val_acc=_float(a.get(Attr.VAL_ACC.value)),
            val_loss=_float(a.get(Attr.VAL_LOSS.value)),
            test_acc=_float(a.get(Attr.TEST_ACC.value)),
            seconds=_float(a.get(Attr.SECONDS.value)),
            checkpoint=_str(a.get(Attr.CHECKPOINT.value)),
            checkpoint_host=_str(a.get(Attr.CHECKPOINT_HOST.value)),
            last_checkpoint=_str(a.get(Attr.LAST_CHECKPOINT.value)),
            resumed_from=_int(resumed.get("trial")),
            resumed_epoch=_int(resumed.get("epoch")),
            started_over=_str(a.get(Attr.STARTED_OVER.value)),
            error=_str(a.get(Attr.ERROR.value)),
            traceback=_str(a.get(Attr.TRACEBACK.value)),
            fault=_str(a.get(Attr.FAULT.value)),
            bug=bool(a.get(Attr.BUG.value)),
            retry_of=tuple(retry_history(trial)),
            screened=isinstance(screened, dict),
            screen_score=_float(screen.get("score")),
            screen_pool=_int(screen.get("pool")),
            promoted_from=_int(promoted.get("from")) if isinstance(promoted, dict) else None,
            proxies={k: float(v) for k, v in proxies.items() if _float(v) is not None}
            if isinstance(proxies, dict)
            else {},
        )

    @property
    def outcome(self) -> Outcome:
        """What the trial means (see :func:`outcome`)."""
        if self.screened:
            return "screening" if self.state == TrialState.RUNNING else "screened"
        if self.state == TrialState.COMPLETE:
            return "complete"
        if self.state == TrialState.PRUNED:
            return "rejected" if self.rejected else "pruned"
        if self.state == TrialState.RUNNING:
            return "running"
        if self.state == TrialState.WAITING:
            return "waiting"
        if self.over_budget:
            return "over_budget"
        if self.bug:
            return "bug"
        if self.error is not None:
            return "fault"
        if self.reason == INTERRUPTED:
            return "interrupted"
        if self.reason is not None:
            return "preempted"  # SIGTERM, or the ranks of a multi-device trial stopped by the same signal
        return "stale"  # failed by Optuna's heartbeat rule, or its process on this host was gone

    @property
    def finished(self) -> bool:
        """Counts toward the budget: complete, pruned or rejected."""
        return self.outcome in ("complete", "pruned", "rejected")

    @property
    def failed(self) -> bool:
        """Failed with an error of its own (a training fault or a bug), not lost or handed back."""
        return self.outcome in ("fault", "bug")

    @property
    def why(self) -> str:
        """The reason a person reads: the recorded reason, else the error, else the loss of its worker."""
        return self.reason or self.error or "its worker was lost: no heartbeat"

    @property
    def trained_epochs(self) -> int | None:
        """Epochs its stored spec trains for."""
        train = (self.spec or {}).get("train")
        epochs = train.get("epochs") if isinstance(train, dict) else None
        return _int(epochs)

    def metrics(self) -> dict[str, float]:
        """The recorded ``val/acc``, ``val/loss`` and ``test/acc`` that exist."""
        values = {Attr.VAL_ACC: self.val_acc, Attr.VAL_LOSS: self.val_loss, Attr.TEST_ACC: self.test_acc}
        return {k.value: v for k, v in values.items() if v is not None}


def promoted_attrs(number: int, proxy: str, score: float) -> dict[str, Any]:
    """The ``user_attrs`` of the trial the prescreen queues to train proposal ``number``."""
    return {Attr.PROMOTED.value: {"from": number, "proxy": proxy, "score": score}}


def outcome(trial: FrozenTrial) -> Outcome:
    """``complete``, ``pruned`` (by the pruner, in training), ``rejected`` (before training), ``over_budget``
    (other workers took the last slot), ``preempted`` (SIGTERM) and ``interrupted`` (Ctrl-C) (handed back),
    ``stale`` (its worker was lost), ``fault`` (a training fault: diverged, out of memory, a device error),
    ``bug`` (an error that is no training fault), ``running`` or ``waiting``; ``screened`` (scored by the
    prescreen's proxy and not trained) or ``screening`` (being scored)."""
    return TrialRecord.of(trial).outcome


class TrialWriter:
    """Writes a running trial's record (``TrialWriter(trial).rejected(...)``)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def _set(self, key: Attr, value: Any) -> None:
        self.trial.set_user_attr(key.value, value)

    def rejected(self, reason: str, ms: float) -> None:
        self._set(Attr.REJECTED, True)
        self._set(Attr.REASON, reason)
        self._set(Attr.REJECT_MS, round(ms, 3))

    def over_budget(self, reason: str) -> None:
        self._set(Attr.OVER_BUDGET, True)
        self._set(Attr.REASON, reason)

    def worker(self, *, host: str, pid: int, pid_started: int | None, worker: str, versions: Mapping[str, str]) -> None:
        self._set(Attr.HOST, host)
        self._set(Attr.PID, pid)
        self._set(Attr.PID_STARTED, pid_started)
        self._set(Attr.WORKER, worker)
        self._set(Attr.VERSIONS, dict(versions))

    def device(self, device: str) -> None:
        self._set(Attr.DEVICE, device)

    def plan(self, params: int, flops: int) -> None:
        self._set(Attr.PARAMS, params)
        self._set(Attr.FLOPS, flops)

    def latency(self, ms: float) -> None:
        self._set(Attr.LATENCY_MS, ms)

    def latency_timing(self, settings: Mapping[str, Any]) -> None:
        """The runtime and settings of ``latency_ms`` (:meth:`archdsl.compiler.latency.Timing.settings`)."""
        self._set(Attr.LATENCY_TIMING, dict(settings))

    def spec(self, data: Mapping[str, Any]) -> None:
        self._set(Attr.SPEC, dict(data))

    def epoch(self, done: int) -> None:
        self._set(Attr.EPOCH, done)

    def epochs(self, trained: int) -> None:
        self._set(Attr.EPOCHS, trained)

    def result(self, *, val_acc: float, val_loss: float, test_acc: float, seconds: float, epochs: int) -> None:
        self._set(Attr.VAL_ACC, val_acc)
        self._set(Attr.VAL_LOSS, val_loss)
        self._set(Attr.TEST_ACC, test_acc)
        self._set(Attr.SECONDS, seconds)
        self._set(Attr.EPOCHS, epochs)

    def screening(self, proxy: str, pool: int, score: float | None = None) -> None:
        """A proposal of the prescreen pool opened by trial ``pool``; its proxy ``score`` once scored."""
        self._set(Attr.SCREENED, {"proxy": proxy, "pool": pool, "score": score})

    def proxies(self, scores: Mapping[str, float]) -> None:
        self._set(Attr.PROXIES, {k: float(v) for k, v in scores.items()})

    def checkpoint(self, path: Path, host: str) -> None:
        """Absolute, with the host that wrote it: on a cluster ``--out`` is a shared filesystem."""
        self._set(Attr.CHECKPOINT, str(path.resolve()))
        self._set(Attr.CHECKPOINT_HOST, host)

    def last_checkpoint(self, path: Path) -> None:
        """The resumable checkpoint this trial keeps (on the host its ``worker`` record names)."""
        self._set(Attr.LAST_CHECKPOINT, str(path.resolve()))

    def resumed(self, trial: int, epoch: int, checkpoint: Path) -> None:
        self._set(Attr.RESUMED, {"trial": trial, "epoch": epoch, "checkpoint": str(checkpoint)})

    def started_over(self, why: str) -> None:
        self._set(Attr.STARTED_OVER, why)

    def error(self, error: str, traceback: str | None = None) -> None:
        self._set(Attr.ERROR, error[:4000])
        if traceback is not None:
            self._set(Attr.TRACEBACK, traceback)

    def fault(self, kind: str) -> None:
        self._set(Attr.FAULT, kind)

    def bug(self) -> None:
        self._set(Attr.BUG, True)

    def rungs(self, ran: list[dict[str, Any]]) -> None:
        """The rungs so far: ``{rung, fidelity, fraction, size, epochs, <monitor>, cost_epochs}`` each, or
        ``{rung, fidelity, skipped}``."""
        self._set(Attr.RUNGS, [dict(r) for r in ran])

    def cost_epochs(self, cost: float) -> None:
        self._set(Attr.COST_EPOCHS, round(cost, 6))

    def reason(self, reason: str) -> None:
        self._set(Attr.REASON, reason)


def without_record(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` without archdsl's record: what a retry of it starts from (the worker that runs
    the retry writes its own host, pid, epoch, reason...); which screened proposal it trains stays."""
    clean = copy.deepcopy(trial)
    kept = (Attr.PROMOTED.value,)
    clean.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in kept}
    return clean


@dataclass(frozen=True)
class StudyRecord:
    """What archdsl recorded of a study when it created it."""

    search: Mapping[str, Any] | None
    """The search definition and base spec as data (``definition``, ``base``, ``base_file``, ``name``)."""
    out_dir: Path | None
    versions: Mapping[str, str]
    fingerprint: str | None
    run_budget: int | None = None
    """The trial budget the latest run was given (studies of earlier releases record none)."""

    @classmethod
    def of(cls, study: optuna.Study) -> StudyRecord:
        a = study.user_attrs
        search, out, versions = (a.get(k.value) for k in (StudyAttr.SEARCH, StudyAttr.OUT_DIR, StudyAttr.VERSIONS))
        return cls(
            search=search if isinstance(search, dict) else None,
            out_dir=Path(out) if out else None,
            versions=dict(versions) if isinstance(versions, dict) else {},
            fingerprint=_str(a.get(StudyAttr.FINGERPRINT.value)),
            run_budget=_int(a.get(StudyAttr.BUDGET.value)),
        )

    @property
    def definition_data(self) -> Mapping[str, Any]:
        """The search file's data as stored (empty for a study archdsl did not create)."""
        data = (self.search or {}).get("definition")
        return data if isinstance(data, dict) else {}

    @property
    def base_data(self) -> Mapping[str, Any]:
        """The base spec's data as stored."""
        data = (self.search or {}).get("base")
        return data if isinstance(data, dict) else {}

    def budget(self) -> int | None:
        """The trial budget to count against: the latest run's, else the stored definition's."""
        if self.run_budget is not None:
            return self.run_budget
        definition = self.definition()
        return definition.budget.trials if definition is not None else None

    def definition(self) -> SearchDefinition | None:
        """The stored search definition, validated again (every default filled in, as the search file would
        be today); None for a study archdsl did not create, or one it can no longer read."""
        data = self.definition_data
        try:
            return SearchDefinition.model_validate(data) if data else None
        except ValidationError:
            return None

    def base(self) -> ModelSpec | None:
        """The stored base spec, validated again; None where there is none or it no longer validates."""
        data = self.base_data
        try:
            return spec_from_text(json.dumps(data), "<the study's base spec>") if data else None
        except ArchDSLError:
            return None

    def objective_names(self, directions: int) -> list[str]:
        """The metrics of the study's objectives (``value0``, ... for a study archdsl did not create)."""
        definition = self.definition()
        if definition is None:
            return [f"value{i}" for i in range(directions)]
        return [o.metric for o in definition.objectives]


def write_study(
    study: optuna.Study, *, search: Mapping[str, Any], out: Path, versions: Mapping[str, str], fingerprint: str
) -> None:
    """Record the search a study belongs to, once, when it is created; the fingerprint last (its presence
    says the record is whole)."""
    study.set_user_attr(StudyAttr.SEARCH.value, dict(search))
    study.set_user_attr(StudyAttr.OUT_DIR.value, str(out.resolve()))
    study.set_user_attr(StudyAttr.VERSIONS.value, dict(versions))
    study.set_user_attr(StudyAttr.FINGERPRINT.value, fingerprint)


def rewrite_search(study: optuna.Study, search: Mapping[str, Any], fingerprint: str) -> None:
    """Record the search data and fingerprint of a run that joins the study (its budget may differ)."""
    study.set_user_attr(StudyAttr.SEARCH.value, dict(search))
    study.set_user_attr(StudyAttr.FINGERPRINT.value, fingerprint)


def record_budget(study: optuna.Study, trials: int) -> None:
    """Record the trial budget of the run that opened the study, unless it is recorded already."""
    if StudyRecord.of(study).run_budget != trials:
        study.set_user_attr(StudyAttr.BUDGET.value, trials)
