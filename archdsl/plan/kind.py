"""A kind of model part: its spec model, its shape rule and its builder.

Stems, transitions, blocks, mixers and heads are all kinds, each kept in its own registry. The shape rule
is torch-free; the builder returns an ``nn.Module`` (typed loosely so this module stays torch-free).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import Field

from archdsl.plan.shapes import Ctx, Planned
from archdsl.registry import Registry

__all__ = ["BLOCKS", "HEADS", "MIXERS", "STEMS", "TRANSITIONS", "Kind", "import_submodules", "tagged_union"]

S = TypeVar("S")


@dataclass(frozen=True)
class Kind(Generic[S]):
    """One registered part type. ``spec.type`` is a ``Literal[name]`` tag."""

    name: str
    spec: type[S]
    plan: Callable[[S, Ctx], Planned]
    """Shape rule and analytic cost; raises :class:`~archdsl.errors.ShapeError` at a spec path."""
    build: Callable[[S, Ctx], Any]
    """Returns the ``nn.Module``; called inside a ``torch.device`` context."""
    example: Mapping[str, Any] | None = None
    """A small valid use for the contract tests and docs: a stem/mixer/head spec, or a stage for a block
    or transition (input 16x32x32 after the test stem)."""


STEMS: Registry[Kind[Any]] = Registry("stem type")
TRANSITIONS: Registry[Kind[Any]] = Registry("transition type")
BLOCKS: Registry[Kind[Any]] = Registry("block type")
MIXERS: Registry[Kind[Any]] = Registry("mixer type")
HEADS: Registry[Kind[Any]] = Registry("head type")


def tagged_union(registry: Registry[Kind[Any]]) -> Any:
    """The discriminated union (on ``type``) of every spec model in ``registry``."""
    specs = tuple(kind.spec for _, kind in registry.items())
    if len(specs) == 1:
        return specs[0]
    return Annotated[Union[specs], Field(discriminator="type")]  # noqa: UP007


def import_submodules(package: str) -> None:
    """Import every module of ``package`` so that each registers its kind (one file per kind)."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
