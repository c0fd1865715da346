"""Turn a trial into a concrete spec: the only code that calls ``trial.suggest_*``.

Works with any Optuna trial, including ``optuna.trial.FixedTrial(best_params)``, so replaying the best
parameters rebuilds the best model exactly.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import optuna

from archdsl.search.space.components import apply_components
from archdsl.search.space.conv_stages import apply_conv_stages
from archdsl.search.space.definition import (
    COMPONENTS,
    CONV_STAGES,
    BlockChoiceParam,
    ChoiceParam,
    FloatParam,
    IntParam,
    ParamSpec,
)
from archdsl.search.space.load import SearchSpace
from archdsl.search.space.paths import assign, expand, is_valid_path, parse_pattern
from archdsl.spec.load import parse_spec
from archdsl.spec.model import ModelSpec

__all__ = ["branch_param_name", "resolve", "resolve_data"]


def branch_param_name(key: str, branch: str, rel: str) -> str:
    """Optuna name of a parameter that only exists in one branch of a block choice."""
    return f"{key}[{branch}].{rel}"


def _suggest(trial: optuna.Trial, name: str, param: ParamSpec) -> Any:  # type: ignore[valid-type]
    if isinstance(param, IntParam):
        lo, hi = param.int_range
        return trial.suggest_int(name, lo, hi, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        low, high = param.float_range
        return trial.suggest_float(name, low, high, log=param.log, step=param.step)
    if isinstance(param, ChoiceParam):
        return trial.suggest_categorical(name, param.choice)
    if isinstance(param, BlockChoiceParam):
        return trial.suggest_categorical(name, list(param.choice))
    raise TypeError(f"unknown parameter kind {type(param).__name__}")


def _targets(data: Any, pattern: str, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths (below ``prefix``) that ``pattern`` names in this trial's spec so far: none when the part it
    acts on is gone (a halo mixer that ``conv_stages`` turned into a conv)."""
    target = data
    for part in prefix:
        target = target[part]
    return [path for path in expand(target, parse_pattern(pattern)) if is_valid_path(data, (*prefix, *path))]


def _set_all(data: Any, paths: list[tuple[Any, ...]], value: Any, prefix: tuple[Any, ...] = ()) -> None:
    target = data
    for part in prefix:
        target = target[part]
    for path in paths:
        assign(target, path, copy.deepcopy(value))


def resolve_data(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """The base spec's data with the trial's values applied (not yet validated).

    A parameter is sampled only where its path exists in the spec as resolved so far (define-by-run): after
    ``conv_stages`` and the block choices, a parameter of a part that is gone is neither sampled nor recorded,
    so it is not ranked by importance either. The ``components`` row is applied after the block choices (its SE
    and SiLU reach the chosen blocks) and before the other parameters (which may tune what it added)."""
    params = space.definition.params
    data = copy.deepcopy(space.base_doc.data)
    if CONV_STAGES in params:
        apply_conv_stages(data, int(_suggest(trial, CONV_STAGES, params[CONV_STAGES])))
    blocks = {k: p for k, p in params.items() if isinstance(p, BlockChoiceParam)}
    for key, block in blocks.items():
        value = _suggest(trial, key, block)
        for path in expand(data, parse_pattern(key)):
            assign(data, path, copy.deepcopy(block.choice[value]))
            for rel, sub in block.params.get(value, {}).items():
                if paths := _targets(data, rel, path):
                    _set_all(data, paths, _suggest(trial, branch_param_name(key, value, rel), sub), path)
    if COMPONENTS in params:
        data = apply_components(data, str(_suggest(trial, COMPONENTS, params[COMPONENTS])))
    reserved = (CONV_STAGES, COMPONENTS)
    for key, param in params.items():
        if key not in reserved and key not in blocks and (paths := _targets(data, key)):
            _set_all(data, paths, _suggest(trial, key, param))
    return data


def resolve(space: SearchSpace, trial: optuna.Trial) -> ModelSpec:
    """A validated spec for this trial (shape rules are checked later, by the planner)."""
    data = resolve_data(space, trial)
    return parse_spec(replace(space.base_doc, data=data, overrides={}))
