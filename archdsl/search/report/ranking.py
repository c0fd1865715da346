"""Rank the values of a study's categorical parameters: which module (attached attention, context block,
mixer, ...) did best, at what size and cost.

For every parameter whose choices are names (strings), the completed trials are grouped by the value they
took; each row gives the number of trials, the best and the mean of the first objective, and the model
parameters and FLOPs of the best trial of the group. Rows are ranked best first within each parameter. A
value no completed trial took is listed with 0 trials, so that a module the search never reached is seen.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.record import TrialRecord

__all__ = ["RankRow", "module_ranking", "ranking_table"]


@dataclass(frozen=True)
class RankRow:
    param: str
    value: str
    trials: int
    best: float | None
    mean: float | None
    params: int | None
    flops: int | None


def _named_choices(trials: list[FrozenTrial]) -> dict[str, tuple[str, ...]]:
    """Parameters whose distribution is categorical over strings only, with their choices."""
    out: dict[str, tuple[str, ...]] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, CategoricalDistribution) and all(isinstance(c, str) for c in dist.choices):
                out.setdefault(name, tuple(str(c) for c in dist.choices))
    return out


def module_ranking(study: optuna.Study) -> list[RankRow]:
    """One row per (named categorical parameter, value), best first within each parameter."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    sign = -1.0 if maximise else 1.0
    rows: list[RankRow] = []
    for name, choices in sorted(_named_choices(trials).items()):
        group_rows = []
        for value in choices:
            group = [t for t in done if t.params.get(name) == value]
            if not group:
                group_rows.append(RankRow(name, value, 0, None, None, None, None))
                continue
            top = min(group, key=lambda t: (sign * t.values[0], t.number))
            record = TrialRecord.of(top)
            params, flops = record.params, record.flops
            group_rows.append(
                RankRow(
                    name,
                    value,
                    len(group),
                    float(top.values[0]),
                    statistics.fmean(float(t.values[0]) for t in group),
                    int(params) if isinstance(params, int) else None,
                    int(flops) if isinstance(flops, int) else None,
                )
            )
        group_rows.sort(key=lambda r: (r.best is None, sign * r.best if r.best is not None else 0.0, r.value))
        rows.extend(group_rows)
    return rows


def ranking_table(study: optuna.Study, metric: str) -> str | None:
    """The ranking as a Markdown table, or None when no parameter has named choices."""
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
        if r.best is None:
            lines.append(f"| `{r.param}` | {r.value} | – | 0 | – | – | – | – |")
            continue
        params = f"{r.params:,}" if r.params is not None else "–"
        flops = f"{r.flops / 1e6:.2f}" if r.flops is not None else "–"
        lines.append(
            f"| `{r.param}` | {r.value} | {rank} | {r.trials} | {r.best:.4f} | {r.mean:.4f} | {params} | {flops} |"
        )
    return "\n".join(lines)
