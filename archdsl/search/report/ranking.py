"""Rank the values of a study's categorical parameters: which module (attached attention, context block,
mixer, ...) did best, at what size and cost.

For every parameter whose choices are names (strings), the finished trials are grouped by the value they
took; each row gives the number of trials (with how many of them were pruned or rejected), the best and the
mean of the first objective, and the model parameters and FLOPs of the best trial of the group. The values
are those of the group's complete trials; a group none of whose trials completed is given the last value its
pruned trials reported before the pruner stopped them, marked ``(pruned)``. Rows are ranked best first within
each parameter, the groups with complete trials before those with pruned ones only. A value no trial took, or
only rejected (never trained) trials, is listed without a rank, so that a module the search never trained is
seen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

from archdsl.search.record import TrialRecord, epoch_values

__all__ = ["RankRow", "Reported", "module_ranking", "ranking_table", "reported"]


@dataclass(frozen=True)
class Reported:
    """A value a trial reported during training (``trial.report``), at the end of an epoch."""

    value: float
    epoch: int
    """Epochs trained when it was reported (the step, from 1; :mod:`archdsl.search.pruning`)."""


def reported(trial: FrozenTrial, best: bool = False, maximise: bool = True) -> Reported | None:
    """The last finite value ``trial`` reported during training (with ``best``: its best one), or None.

    What a pruned trial reached before the pruner stopped it: the monitored metric, ``val/acc`` unless the
    study's objective is ``val/loss``."""
    values = {step: v for step, v in epoch_values(trial).items() if math.isfinite(v)}
    if not values:
        return None
    sign = 1.0 if maximise else -1.0
    step = max(values, key=lambda s: (sign * values[s], -s)) if best else max(values)
    return Reported(float(values[step]), step)


@dataclass(frozen=True)
class RankRow:
    param: str
    value: str
    trials: int
    """Finished trials that took the value: complete, pruned and rejected."""
    best: float | None
    mean: float | None
    params: int | None
    flops: int | None
    pruned: int = 0
    """Of ``trials``, those stopped by the pruner."""
    rejected: int = 0
    """Of ``trials``, those refused before training."""
    from_pruned: bool = False
    """``best`` and ``mean`` are the last values the pruned trials reported (no trial of the group completed)."""

    @property
    def complete(self) -> int:
        return self.trials - self.pruned - self.rejected


def _named_choices(trials: list[FrozenTrial]) -> dict[str, tuple[str, ...]]:
    """Parameters whose distribution is categorical over strings only, with their choices."""
    out: dict[str, tuple[str, ...]] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, CategoricalDistribution) and all(isinstance(c, str) for c in dist.choices):
                out.setdefault(name, tuple(str(c) for c in dist.choices))
    return out


def _scored(group: Sequence[FrozenTrial]) -> tuple[list[tuple[FrozenTrial, float]], bool]:
    """The group's trials with their values: the complete ones' first objective; where none completed, the
    pruned ones' last reported value (then True)."""
    complete = [(t, float(t.values[0])) for t in group if TrialRecord.of(t).outcome == "complete" and t.values]
    if complete:
        return complete, False
    pruned = [(t, reported(t)) for t in group if TrialRecord.of(t).outcome == "pruned"]
    return [(t, r.value) for t, r in pruned if r is not None], True


def _row(name: str, value: str, group: Sequence[FrozenTrial], sign: float) -> RankRow:
    outcomes = [TrialRecord.of(t).outcome for t in group]
    pruned, rejected = outcomes.count("pruned"), outcomes.count("rejected")
    scored, from_pruned = _scored(group)
    if not scored:
        return RankRow(name, value, len(group), None, None, None, None, pruned, rejected)
    top, best = min(scored, key=lambda s: (sign * s[1], s[0].number))
    record = TrialRecord.of(top)
    return RankRow(
        name,
        value,
        len(group),
        best,
        statistics.fmean(v for _, v in scored),
        record.params,
        record.flops,
        pruned,
        rejected,
        from_pruned,
    )


def module_ranking(study: optuna.Study) -> list[RankRow]:
    """One row per (named categorical parameter, value), best first within each parameter."""
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if TrialRecord.of(t).finished]
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    sign = -1.0 if maximise else 1.0
    rows: list[RankRow] = []
    for name, choices in sorted(_named_choices(trials).items()):
        group_rows = [
            _row(name, value, [t for t in finished if t.params.get(name) == value], sign) for value in choices
        ]
        group_rows.sort(
            key=lambda r: (r.best is None, r.from_pruned, sign * r.best if r.best is not None else 0.0, r.value)
        )
        rows.extend(group_rows)
    return rows


def _count(r: RankRow) -> str:
    """``3``, or ``5 (1 pruned, 2 rejected)`` where some were not complete."""
    parts = [f"{n} {what}" for n, what in ((r.pruned, "pruned"), (r.rejected, "rejected")) if n]
    return f"{r.trials} ({', '.join(parts)})" if parts else str(r.trials)


def ranking_table(study: optuna.Study, metric: str) -> str | None:
    """The ranking as a Markdown table, or None when no parameter has named choices. Values from pruned
    trials (what they last reported) are marked ``(pruned)``."""
    rows = module_ranking(study)
    if not rows:
        return None
    lines = [
        f"| parameter | value | rank | trials | best {metric} | mean {metric} | params (best) | MFLOPs (best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rank = 0
    last = None
    for r in rows:
        rank = 1 if r.param != last else rank + 1
        last = r.param
        if r.best is None or r.mean is None:
            lines.append(f"| `{r.param}` | {r.value} | – | {_count(r)} | – | – | – | – |")
            continue
        mark = " (pruned)" if r.from_pruned else ""
        params = f"{r.params:,}" if r.params is not None else "–"
        flops = f"{r.flops / 1e6:.2f}" if r.flops is not None else "–"
        lines.append(
            f"| `{r.param}` | {r.value} | {rank} | {_count(r)} | {r.best:.4f}{mark} | {r.mean:.4f}{mark} | "
            f"{params} | {flops} |"
        )
    return "\n".join(lines)
