"""The budgets of a search as Optuna constraints: what the sampler learns the feasible region from.

Each limit of ``budget`` (``max_params``, ``max_flops``, ``max_latency_ms``) becomes a constraint value set on
the trial with ``Trial.set_constraint`` as soon as the quantity is known (the plan's counts before any weight
exists, the latency after a build): ``value / limit - 1``, feasible when ``<= 0``, as Optuna's convention has it.
The value is relative rather than ``value - limit`` because TPE ranks infeasible trials by the *sum* of their
violations: parameters, FLOPs and milliseconds summed raw would let the FLOPs drown the other two.
An infeasible trial is still refused before training (recorded as rejected, its constraints beside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from archdsl.search.space.definition import BudgetSpec

__all__ = ["LIMITS", "Limit", "constrain"]


@dataclass(frozen=True)
class Limit:
    """One budget limit: the metric it bounds and how it is printed."""

    field: str
    """``budget.<field>`` and the constraint's key."""
    metric: str
    """The metric of the trial it bounds (``params``, ``flops``, ``latency_ms``)."""
    unit: str = ""

    def limit(self, budget: BudgetSpec) -> float | None:
        value = getattr(budget, self.field)
        return None if value is None else float(value)

    def describe(self, value: float, limit: float) -> str:
        if self.unit:
            return f"{self.metric.split('_')[0]} {value:.2f} {self.unit} > budget.{self.field} {limit}"
        return f"{self.metric} {value:,.0f} > budget.{self.field} {limit:,.0f}"


LIMITS = (Limit("max_params", "params"), Limit("max_flops", "flops"), Limit("max_latency_ms", "latency_ms", "ms"))


def constrain(trial: optuna.Trial, budget: BudgetSpec, metrics: dict[str, float]) -> str | None:
    """Set the constraint of every limit whose metric is known (once per trial); the first violation, as the
    reason to reject, or ``None`` when every known metric is within its limit."""
    reason = None
    known = trial.constraints
    for item in LIMITS:
        limit, value = item.limit(budget), metrics.get(item.metric)
        if limit is None or value is None:
            continue
        if item.field not in known:
            trial.set_constraint(item.field, value / limit - 1.0)
        if value > limit and reason is None:
            reason = item.describe(value, limit)
    return reason
