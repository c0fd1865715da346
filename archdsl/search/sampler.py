"""Samplers and pruners of a search definition; random draws seeded by trial number, not by process.

A sampler seeded once per process replays the same random draws in every process: a resumed search
repeats its start-up trials and N workers on one study propose each start-up architecture N times.
:class:`TrialSeeded` gives every trial its own generator, derived from ``(sampler.seed, trial.number)``:
trial numbers are unique in a study, so no two trials share random draws, and a resumed or parallel
search proposes what one uninterrupted process would have (TPE's model still depends on which trials
have finished; ``constant_liar`` keeps concurrent workers apart).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.space.definition import BlockChoiceParam, ChoiceParam, IntParam, SamplerSpec
from archdsl.search.space.load import SearchSpace

__all__ = ["SAMPLERS", "TrialSeeded", "make_pruner", "make_sampler", "trial_seed"]


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for trial ``number`` of a search seeded with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeeded(BaseSampler):
    """Delegates to a sampler made afresh for every trial from ``factory(trial_seed(seed, number))``."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = seed
        self._inner = self._make(seed)  # replaced before every trial

    @property
    def inner(self) -> BaseSampler:
        return self._inner

    def __str__(self) -> str:
        return f"TrialSeeded({type(self._inner).__name__}, seed={self._seed})"

    def _make(self, seed: int) -> BaseSampler:
        with warnings.catch_warnings():  # NSGA-III (and TPE's options in Optuna 4) are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._factory(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def _grid(space: SearchSpace) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for key, p in space.definition.params.items():
        if isinstance(p, IntParam):
            grid[key] = list(range(p.int_range[0], p.int_range[1] + 1, p.step))
        elif isinstance(p, (ChoiceParam, BlockChoiceParam)):
            grid[key] = list(p.choice)
    return grid


def make_sampler(space: SearchSpace) -> BaseSampler:
    """The definition's sampler, seeded per trial (see :class:`TrialSeeded`).

    Budgets reach the samplers as Optuna constraints that every trial sets (``Trial.set_constraint``, read by
    tpe, nsga2, nsga3 and gp); nothing here wires them.
    """
    s = space.definition.sampler
    if s.name == "grid":
        # The grid sampler's seed fixes the order of its grid, so it must be the same in every process; it
        # takes unvisited (and not running) points, which keeps processes apart without per-trial seeds.
        return optuna.samplers.GridSampler(_grid(space), seed=s.seed)
    if s.name == "qmc":
        # One scrambled Sobol sequence for the whole study (the point index is kept in the study's storage, so
        # processes continue one sequence); choices, which QMC cannot place, are drawn per trial at random.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                seed=s.seed,
                independent_sampler=TrialSeeded(lambda seed: optuna.samplers.RandomSampler(seed=seed), s.seed),
                warn_independent_sampling=False,
            )
    return TrialSeeded(SAMPLERS[s.name](s), s.seed)


def _tpe(s: SamplerSpec) -> Callable[[int], BaseSampler]:
    return lambda seed: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=s.startup_trials, multivariate=True, constant_liar=True
    )


def _gp(s: SamplerSpec) -> Callable[[int], BaseSampler]:
    return lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.startup_trials)


def _cmaes(s: SamplerSpec) -> Callable[[int], BaseSampler]:
    # CMA-ES keeps its state in the study's storage, so a sampler made afresh per trial continues it. It takes no
    # constraints (infeasible trials are pruned, which it skips); say that once in the docs, not every trial.
    warnings.filterwarnings("ignore", message="Constraints have been set, but CmaEsSampler", category=UserWarning)
    return lambda seed: optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=s.startup_trials, warn_independent_sampling=False
    )


SAMPLERS: dict[str, Callable[[SamplerSpec], Callable[[int], BaseSampler]]] = {
    "random": lambda s: lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "nsga2": lambda s: lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "nsga3": lambda s: lambda seed: optuna.samplers.NSGAIIISampler(seed=seed),
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": _cmaes,
}
"""Sampler name -> factory of the per-trial sampler (``grid`` and ``qmc`` keep one sampler per study)."""


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    """The search's pruner. Over epochs its steps are epochs; over rungs (``fidelity: data`` or ``resolution``)
    rung r reports at step ``reduction_factor^r`` (:func:`~archdsl.search.fidelity.rung_step`), so Optuna's
    rung r, promoted at ``min_resource x eta^r`` with ``min_resource`` 1, is the r-th rung."""
    from archdsl.search.fidelity import first_rung, rung_step, rungs

    p = space.definition.pruner
    if p.name == "none" or len(space.objective_names) > 1:
        return optuna.pruners.NopPruner()
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)
    eta = p.reduction_factor
    if p.fidelity == "epochs":
        first = int(first_rung(p))
        if p.name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=first, reduction_factor=eta)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=eta)
    if p.name == "hyperband":
        top = rung_step(len(rungs(p)) - 1, eta)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top, reduction_factor=eta)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta)
