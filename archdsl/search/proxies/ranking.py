"""Rank random samples of a search space by zero-cost proxies, without training any of them.

Candidates are drawn by Optuna's seeded ``RandomSampler`` from an in-memory study (``study.ask()``, then
:func:`~archdsl.search.space.resolution.resolve` and :func:`~archdsl.planner.plan_spec`) and refused as a
search refuses its trials: a broken shape rule, or ``budget.max_params`` / ``budget.max_flops`` exceeded
(``budget.max_latency_ms`` is not measured here). Every feasible candidate is scored by :func:`score` on the
batch of :func:`load_batch` (loaded once, then cached) and ranked by the first proxy, highest first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from archdsl.errors import ArchDSLError
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.constraints import constrain
from archdsl.search.proxies.batch import load_batch
from archdsl.search.proxies.kinds import require
from archdsl.search.proxies.scoring import score
from archdsl.search.space.load import SearchSpace
from archdsl.search.space.resolution import resolve

__all__ = ["Candidate", "Ranking", "Refusal", "rank", "sample"]


@dataclass(frozen=True)
class Refusal:
    """A sampled architecture that is not scored, and why (as its trial would be rejected)."""

    trial: int
    params: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Candidate:
    """A scored architecture."""

    trial: int
    params: dict[str, Any]
    """The sampled search parameters."""
    scores: dict[str, float]
    """Proxy name -> score, higher predicted better."""
    model_params: int
    flops: int
    seconds: float
    """Resolve, plan and score of this candidate."""


@dataclass(frozen=True)
class Ranking:
    proxies: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    """Ranked by the first proxy, highest first (a NaN score last)."""
    refused: tuple[Refusal, ...]
    batch_size: int
    batch_seconds: float
    """Loading the data once (not part of any candidate's time)."""

    @property
    def seconds_per_candidate(self) -> float:
        """Mean measured seconds of a scored candidate (0 when none was scored)."""
        return sum(c.seconds for c in self.candidates) / len(self.candidates) if self.candidates else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``archdsl rank --json`` object; a non-finite score is ``null``."""
        return {
            "proxies": list(self.proxies),
            "candidates": [
                {
                    "rank": i,
                    "trial": c.trial,
                    "params": c.params,
                    "scores": {k: v if math.isfinite(v) else None for k, v in c.scores.items()},
                    "model_params": c.model_params,
                    "flops": c.flops,
                    "seconds": round(c.seconds, 4),
                }
                for i, c in enumerate(self.candidates, 1)
            ],
            "refused": len(self.refused),
            "refusals": [{"trial": r.trial, "params": r.params, "reason": r.reason} for r in self.refused],
            "batch_size": self.batch_size,
            "batch_seconds": round(self.batch_seconds, 3),
            "seconds_per_candidate": round(self.seconds_per_candidate, 4),
        }


def sample(space: SearchSpace, n: int, seed: int) -> Iterator[tuple[int, dict[str, Any], PlannedSpec | str]]:
    """``n`` seeded random samples: ``(trial number, parameters, planned spec or the reason it is refused)``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        try:
            planned: PlannedSpec | str = plan_spec(resolve(space, trial))
        except ArchDSLError as err:
            planned = "; ".join(f"{p.path}: {p.message}" for p in err.problems)
        if isinstance(planned, PlannedSpec):  # the budget's refusal, in the words a search's trial gets
            counts = {"params": float(planned.plan.params), "flops": float(planned.plan.flops)}
            planned = constrain(trial, space.definition.budget, counts) or planned
        yield trial.number, dict(trial.params), planned


def rank(
    space: SearchSpace,
    names: Sequence[str],
    candidates: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int | None = None,
    allow_import: bool = False,
) -> Ranking:
    """Sample ``candidates`` architectures of ``space`` (seed ``seed``), score the feasible ones with the proxies
    ``names`` (weights and batch seeded by ``seed`` too) and rank them by the first."""
    require(names, "--proxy")
    if candidates < 1:
        raise ValueError(f"rank at least one candidate, got {candidates}")
    scored: list[Candidate] = []
    refused: list[Refusal] = []
    size, batch_seconds = 0, 0.0
    started = time.perf_counter()
    for number, params, planned in sample(space, candidates, seed):
        if isinstance(planned, str):
            refused.append(Refusal(number, params, planned))
            started = time.perf_counter()
            continue
        loading = time.perf_counter()
        batch = load_batch(planned.spec, seed=seed, device=device, size=batch_size, allow_import=allow_import)
        loaded = time.perf_counter()
        batch_seconds += loaded - loading
        size = int(batch.images.shape[0])
        scores = score(planned, names, batch, seed=seed)
        done = time.perf_counter()
        plan = planned.plan
        scored.append(Candidate(number, params, scores, plan.params, plan.flops, done - started - (loaded - loading)))
        started = done
    order = sorted(scored, key=lambda c: _key(c.scores[names[0]], c.trial))
    return Ranking(tuple(names), tuple(order), tuple(refused), size, batch_seconds)


def _key(value: float, trial: int) -> tuple[int, float, int]:
    return (1, 0.0, trial) if math.isnan(value) else (0, -value, trial)
