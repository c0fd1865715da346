"""A recipe: which module to build and with which keyword arguments, as plain data (no torch).

``Recipe("archdsl.nn.bottleneck.Bottleneck", {"in_channels": 64, ..., "mixer": Recipe(...)})``. Argument
values are ``None``, booleans, numbers, strings, lists of them, or recipes (the module is built first and
passed in). The compiler instantiates recipes, export prints them as constructor calls, and a plan's
recipes round-trip through JSON. Targets are limited to the module packages in :data:`TARGET_PACKAGES`
(and packages that plug-ins add), so a plan read from a file cannot name arbitrary code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TARGET_PACKAGES", "Recipe", "allow_target_package", "target_allowed"]

TARGET_PACKAGES: list[str] = ["archdsl.nn.", "torch.nn."]
"""Module packages a recipe may name (plug-ins add theirs with :func:`allow_target_package`)."""

_TARGET_KEY, _KWARGS_KEY = "target", "kwargs"


def allow_target_package(package: str) -> None:
    """Let recipes name modules of ``package`` (a plug-in's own ``nn.Module`` classes)."""
    prefix = package.rstrip(".") + "."
    if prefix not in TARGET_PACKAGES:
        TARGET_PACKAGES.append(prefix)


def target_allowed(target: str) -> bool:
    return any(target.startswith(p) for p in TARGET_PACKAGES)


def _plain(value: Any) -> Any:
    """Argument values as stored: tuples become lists (JSON has no tuples), recipes stay recipes."""
    if isinstance(value, Recipe) or value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"a recipe argument is plain data or a recipe, got {type(value).__name__}")


@dataclass(frozen=True)
class Recipe:
    """A module to build: its class as an importable dotted name and its keyword arguments."""

    target: str
    """The module's class, ``package.module.Class`` inside :data:`TARGET_PACKAGES`."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of its constructor: plain data, or recipes of the modules it is given."""

    def __post_init__(self) -> None:
        if not target_allowed(self.target):
            raise ValueError(f"recipe target '{self.target}' is outside {', '.join(TARGET_PACKAGES)}")
        object.__setattr__(self, "kwargs", {k: _plain(v) for k, v in self.kwargs.items()})

    @property
    def class_name(self) -> str:
        return self.target.rsplit(".", 1)[1]

    def children(self) -> list[Recipe]:
        """The recipes among the arguments (nested in lists too), in argument order."""
        found: list[Recipe] = []

        def walk(value: Any) -> None:
            if isinstance(value, Recipe):
                found.append(value)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        for v in self.kwargs.values():
            walk(v)
        return found

    def walk(self) -> list[Recipe]:
        """This recipe and every recipe inside it, depth first."""
        out = [self]
        for child in self.children():
            out.extend(child.walk())
        return out

    def to_data(self) -> dict[str, Any]:
        def encode(value: Any) -> Any:
            if isinstance(value, Recipe):
                return value.to_data()
            if isinstance(value, list):
                return [encode(v) for v in value]
            return value

        return {_TARGET_KEY: self.target, _KWARGS_KEY: {k: encode(v) for k, v in self.kwargs.items()}}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Recipe:
        def decode(value: Any) -> Any:
            if isinstance(value, Mapping):
                return cls.from_data(value)
            if isinstance(value, list):
                return [decode(v) for v in value]
            return value

        if set(data) != {_TARGET_KEY, _KWARGS_KEY}:
            raise ValueError(f"a recipe is {{'target': ..., 'kwargs': {{...}}}}, got keys {sorted(data)}")
        return cls(str(data[_TARGET_KEY]), {k: decode(v) for k, v in data[_KWARGS_KEY].items()})
