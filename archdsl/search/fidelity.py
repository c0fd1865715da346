"""Fidelities beyond epochs: successive halving over rungs of training data or input resolution.

``pruner: {name: successive_halving, fidelity: data | resolution}`` trains a trial in rungs. Rung r trains
the trial's architecture from scratch, for all of ``train.epochs``, at the fidelity
``f_r = min_fidelity x reduction_factor^r`` (while below 1), and the last rung at 1: the trial's own spec.
``data`` scales ``train.data.fraction`` (a stratified, seeded subset of the training split), ``resolution``
scales the side of ``input.size`` (the device step resizes the images to it; the spec is planned again at
each size, and a size the architecture cannot plan at, e.g. a feature map a halo block does not divide, is
skipped and recorded as such). After each rung below the last the rung's validation metric is reported and
the pruner (Optuna's ``SuccessiveHalvingPruner`` or ``HyperbandPruner``) decides whether the trial goes on;
the trial's value is the last rung's.

Why from scratch rather than continuing the weights of the rung below: a rung then measures what the
architecture reaches at that fidelity with the whole learning-rate schedule, the same for every trial, which is
what successive halving compares; a lower resolution also changes the model's shapes (position embeddings,
global attention over a smaller map), so weights would not carry over.

Rung r reports at step ``reduction_factor^r`` (:func:`rung_step`): with ``min_resource`` 1 Optuna's rung r is
promoted at that step, so its rungs and these coincide (a skipped rung's decision is taken with the next).
``hyperband`` spreads trials over brackets whose first decision comes at a later rung: a trial of bracket b
trains rungs 0 to b before the pruner can stop it.

Cost: ``cost_epochs``, recorded for every trained trial (:func:`cost_epochs`), counts training epochs over the
whole training split at the trial's own input size: an epoch costs ``train.data.fraction x (size / input.size)^2``
(pixels, which is what convolutions cost; global attention costs more than its share at a larger size). A trial
that reaches the last rung costs ``epochs x sum(f_r)`` over data and ``epochs x sum(f_r^2)`` over resolution:
with ``min_fidelity = eta^-k`` under ``eta / (eta - 1)`` and ``eta^2 / (eta^2 - 1)`` times a plain training
(1.5 and 1.125 for eta 3); one pruned at rung r costs rungs 0 to r. Not counted: every rung validates on the
whole validation split after each epoch (a data rung's validation costs as much as the last rung's) and
starts a training run of its own (data loading, one compile with ``train.compile``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchDSLError
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.record import TrialWriter
from archdsl.search.space.definition import PrunerSpec
from archdsl.spec.model import ModelSpec

if TYPE_CHECKING:
    import optuna

    from archdsl.train.fit import FitResult

__all__ = [
    "RUNGS_DIR",
    "Climbed",
    "climb",
    "cost_epochs",
    "first_rung",
    "rung_spec",
    "rung_step",
    "rungs",
]

RUNGS_DIR = "rungs"
"""Rungs below the last train in ``TRIAL_DIR/rungs/<r>``; the last trains in the trial's directory."""
_ONE = 1.0 - 1e-9
"""A fidelity this close to 1 is the whole (``1/3 x 3`` is not exactly 1 in floating point)."""

TrainRung = Callable[[PlannedSpec, Path, bool], "FitResult"]
"""``(planned rung, directory, test) -> FitResult``: one training run (the objective's ``fit``)."""


def first_rung(pruner: PrunerSpec) -> float:
    """The first rung's fidelity: ``min_fidelity``, else epochs ``max(1, warmup_epochs)``, a data fraction of
    ``1/eta^2``, or an input side of ``1/eta`` of ``input.size``."""
    if pruner.min_fidelity is not None:
        return pruner.min_fidelity
    eta = pruner.reduction_factor
    if pruner.fidelity == "epochs":
        return float(max(1, pruner.warmup_epochs))
    return 1.0 / eta**2 if pruner.fidelity == "data" else 1.0 / eta


def rungs(pruner: PrunerSpec) -> tuple[float, ...]:
    """The fidelities of the rungs of ``data`` or ``resolution``: ``min_fidelity x eta^r`` while below 1, then 1."""
    first, eta = first_rung(pruner), pruner.reduction_factor
    below: list[float] = []
    while first * eta ** len(below) < _ONE:
        below.append(first * eta ** len(below))
    return (*below, 1.0)


def rung_step(r: int, eta: int) -> int:
    """The step rung ``r`` reports at: ``eta^r`` (Optuna's rung r with ``min_resource`` 1)."""
    return int(eta**r)


def rung_spec(spec: ModelSpec, fidelity: str, f: float) -> ModelSpec:
    """``spec`` at fidelity ``f`` of ``data`` (``train.data.fraction x f``) or ``resolution`` (``input.size``
    side ``x f``, rounded, at least 1 px); ``f`` 1 is ``spec`` itself. The source is kept, so the rung's
    problems are located in the trial's file."""
    if f >= _ONE:
        return spec
    if fidelity == "data":
        data = spec.train.data
        part = data.model_copy(update={"fraction": getattr(data, "fraction", 1.0) * f})
        return spec.model_copy(update={"train": spec.train.model_copy(update={"data": part})})
    if fidelity == "resolution":
        size = max(1, round(spec.input.size * f))
        return spec.model_copy(update={"input": spec.input.model_copy(update={"size": size})})
    raise ValueError(f"rungs are of data or resolution, got fidelity {fidelity!r}")


def cost_epochs(epochs: float, trained: ModelSpec, trial: ModelSpec) -> float:
    """``epochs`` of ``trained`` in epochs over the whole training split at ``trial``'s input size:
    ``epochs x train.data.fraction x (trained size / trial size)^2``."""
    fraction = getattr(trained.train.data, "fraction", 1.0)
    return epochs * fraction * (trained.input.size / trial.input.size) ** 2


@dataclass(frozen=True)
class Climbed:
    """What the rungs of a trial that reached the last one trained."""

    result: FitResult
    """The last rung's: the trial's value."""
    epochs: int
    """Epochs trained, summed over the rungs."""
    cost_epochs: float
    """Their cost (:func:`cost_epochs`), summed over the rungs."""
    seconds: float
    """Training time, summed over the rungs."""


def climb(
    trial: optuna.Trial,
    planned: PlannedSpec,
    pruner: PrunerSpec,
    out: Path,
    monitor: str,
    train: TrainRung,
    host: str,
) -> Climbed:
    """Train ``planned`` (the trial's own spec, the last rung) rung by rung in ``out``, reporting each rung's
    ``monitor`` to ``trial`` and raising ``optuna.TrialPruned`` when the pruner stops it (its checkpoint, on
    ``host``, is that rung's best); the rungs that ran (and those skipped, and why) are recorded as they
    finish (``rungs`` and ``cost_epochs`` attributes)."""
    import optuna

    record = TrialWriter(trial)
    spec, eta = planned.spec, pruner.reduction_factor
    schedule = rungs(pruner)
    ran: list[dict[str, Any]] = []
    epochs, cost, seconds, last_size = 0, 0.0, 0.0, None
    for r, f in enumerate(schedule):
        top = r == len(schedule) - 1
        entry: dict[str, Any] = {"rung": r, "fidelity": round(f, 6)}
        try:
            rung = planned if top else plan_spec(rung_spec(spec, pruner.fidelity, f))
        except ArchDSLError as err:  # e.g. a halo block size that does not divide the smaller feature maps
            ran.append({**entry, "skipped": "; ".join(f"{p.path}: {p.message}" for p in err.problems)})
            record.rungs(ran)
            continue
        entry.update(fraction=getattr(rung.spec.train.data, "fraction", 1.0), size=rung.spec.input.size)
        if pruner.fidelity == "resolution" and rung.spec.input.size == last_size and not top:
            ran.append({**entry, "skipped": f"input.size {last_size} again (rounded), trained at the rung below"})
            record.rungs(ran)
            continue
        last_size = rung.spec.input.size
        where = out if top else out / RUNGS_DIR / str(r)
        result = train(rung, where, top)
        spent = cost_epochs(result.epochs, rung.spec, spec)
        epochs, cost, seconds = epochs + result.epochs, cost + spent, seconds + result.seconds
        value = result.val_acc if monitor == "val/acc" else result.val_loss
        entry.update({"epochs": result.epochs, monitor: value, "cost_epochs": round(spent, 6)})
        ran.append(entry)
        record.rungs(ran)
        record.cost_epochs(cost)
        if top:
            return Climbed(result, epochs, cost, round(seconds, 2))
        (where / "last.ckpt").unlink(missing_ok=True)  # nothing resumes a finished rung; best.ckpt stays
        trial.report(value, step=rung_step(r, eta))
        if trial.should_prune():
            record.epochs(epochs)
            if (where / "best.ckpt").is_file():
                record.checkpoint(where / "best.ckpt", host)
            raise optuna.TrialPruned(f"pruned after rung {r} ({pruner.fidelity} {f:g})")
    raise AssertionError("the last rung is the trial's own spec and always trains")  # pragma: no cover
