"""Build the modules a recipe names: arguments first (recipes inside are built depth first), keywords only."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from archdsl.plan.recipe import Recipe, target_allowed

__all__ = ["instantiate", "resolve_target"]


def resolve_target(target: str) -> type[nn.Module]:
    """The ``nn.Module`` class a recipe names (only within the allowed packages)."""
    if not target_allowed(target):
        raise ValueError(f"recipe target '{target}' is not in an allowed module package")
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"recipe target '{target}' is not an nn.Module class")
    return cls


def instantiate(recipe: Recipe) -> nn.Module:
    """``Target(**kwargs)`` with every nested recipe built first."""

    def value(v: Any) -> Any:
        if isinstance(v, Recipe):
            return instantiate(v)
        if isinstance(v, list):
            return [value(x) for x in v]
        return v

    return resolve_target(recipe.target)(**{k: value(v) for k, v in recipe.kwargs.items()})
