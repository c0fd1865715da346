"""Kinds of model parts: their spec model and their shape rule, which plans a node with its recipe.

Stems, transitions, blocks, mixers, attached attention modules, heads and datasets are kinds, each role in
its own registry. A kind is torch-free: its rule returns a :class:`~archdsl.plan.shapes.Node` whose recipe
names the ``nn.Module`` to build. A kind's name is stated once, in its spec model's ``type: Literal[name]``
(a dataset's ``name: Literal[name]``): :meth:`Kind.of` reads it from there (:func:`type_name`), the registry
files the kind under it (:meth:`KindRegistry.add`) and the rule names its node ``spec.type``. A kind declares
the memory layout its module needs (``layout``), which registering records for the plan
(:mod:`archdsl.plan.layout`). Built-in kinds live one per file in the role packages; third-party
packages add kinds through the ``archdsl.kinds`` entry-point group (a module that registers kinds when
imported, or a function that does when called). :func:`load_kinds` imports both, once; the spec models are
built from the registries after that, and the registries are then closed: registering later is refused
with the reason, instead of being accepted and ignored.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, Protocol, TypeVar, Union, get_args, get_origin

from pydantic import Field

from archdsl.plan.layout import Layout, declare_layout
from archdsl.plan.recipe import allow_target_package
from archdsl.registry import Registry

if TYPE_CHECKING:
    from archdsl.plan.shapes import Ctx, Node

__all__ = [
    "ATTENTION",
    "BLOCKS",
    "DATASETS",
    "ENTRY_POINT_GROUP",
    "HEADS",
    "MIXERS",
    "REGISTRIES",
    "STEMS",
    "TRANSITIONS",
    "DatasetKind",
    "Kind",
    "KindRegistry",
    "close_registries",
    "import_submodules",
    "load_kinds",
    "tagged_union",
    "type_name",
]

S = TypeVar("S")
ENTRY_POINT_GROUP = "archdsl.kinds"


def type_name(spec: type[Any], tag: str = "type") -> str:
    """The name a spec model is tagged with: the one value of its ``Literal`` field ``tag`` (``"halo"`` for
    ``type: Literal["halo"]``; a dataset's tag is ``name``)."""
    field = getattr(spec, "model_fields", {}).get(tag)
    values = get_args(field.annotation) if field is not None and get_origin(field.annotation) is Literal else ()
    if len(values) != 1 or not isinstance(values[0], str):
        raise TypeError(f"{spec.__name__}.{tag} must be a Literal of one string, the kind's name")
    return values[0]


@dataclass(frozen=True)
class Kind(Generic[S]):
    """One registered part type. ``spec.type`` is a ``Literal[name]`` tag, from which :meth:`of` reads ``name``."""

    name: str
    spec: type[S]
    plan: Callable[[S, Ctx], Node]
    """Shape rule, recipe and analytic cost; raises :class:`~archdsl.errors.ShapeError` at a spec path."""
    example: Mapping[str, Any] | None = None
    """A small valid use for the contract tests and docs: a stem/mixer/attention/head spec, or a stage for a
    block or transition (input 16x32x32 after the test stem)."""
    layout: Layout = "any"
    """The memory layout its module needs: ``nchw`` where it cuts NCHW maps into blocks and heads (a plan whose
    ``nchw`` parts carry a fifth of the FLOPs builds in NCHW, :attr:`~archdsl.plan.shapes.ModelPlan.channels_last`),
    ``any`` where channels-last serves as well."""

    @classmethod
    def of(
        cls,
        spec: type[S],
        plan: Callable[[S, Ctx], Node],
        example: Mapping[str, Any] | None = None,
        layout: Layout = "any",
    ) -> Kind[S]:
        """The kind named by ``spec``'s ``type`` tag (:func:`type_name`)."""
        return cls(type_name(spec), spec, plan, example, layout)


@dataclass(frozen=True)
class DatasetKind(Generic[S]):
    """A dataset: its spec (tagged by ``name``), the DataModule that reads it (imported only to train) and
    what an exported model must know of it."""

    name: str
    spec: type[S]
    datamodule: str
    """``module:function`` returning the LightningDataModule for a ``DataRequest``."""
    preprocessing: str
    """``module:function``, ``(spec, channels, size) -> {scale, mean, std, invert, ...}``: how an exported model's
    input is prepared (imported only to export: the digits statistics are computed from the images). ``invert``
    is ``"auto"`` (invert an image whose background is not the training images' ``background``), ``"yes"``
    or ``"no"``."""
    class_names: Callable[[S, int], list[str]]
    """``(spec, num_classes) -> names`` of the classes, in label order."""
    train_images: Callable[[S], int] | None = None
    """``spec -> `` how many images train the model, for a dataset that knows it without reading files."""

    @classmethod
    def of(
        cls,
        spec: type[S],
        datamodule: str,
        preprocessing: str,
        class_names: Callable[[S, int], list[str]],
        *,
        train_images: Callable[[S], int] | None = None,
    ) -> DatasetKind[S]:
        """The dataset named by ``spec``'s ``name`` tag (:func:`type_name`)."""
        return cls(type_name(spec, "name"), spec, datamodule, preprocessing, class_names, train_images)


class _Named(Protocol):
    """A registry item: a kind or a dataset, named."""

    @property
    def name(self) -> str: ...


K = TypeVar("K", bound=_Named)


class KindRegistry(Registry[K]):
    """The kinds of one role (``block``, ...); it closes once the spec models are built from it."""

    def __init__(self, role: str, kind: str) -> None:
        super().__init__(kind)
        self.role = role
        self.closed = False

    def register(self, name: str, item: K) -> K:
        if self.closed:
            raise ValueError(
                f"{self.kind} '{name}' is registered after the spec models were built from the registry, so no "
                f"spec could use it; register kinds from a module named in the '{ENTRY_POINT_GROUP}' entry-point "
                "group, which archdsl imports before it builds them"
            )
        super().register(name, item)
        if isinstance(item, Kind):
            declare_layout(self.role, name, item.layout)
        return item

    def add(self, item: K) -> K:
        """Register ``item`` under its own name (:meth:`Kind.of` reads it from the spec model)."""
        return self.register(item.name, item)


STEMS: KindRegistry[Kind[Any]] = KindRegistry("stem", "stem type")
TRANSITIONS: KindRegistry[Kind[Any]] = KindRegistry("transition", "transition type")
BLOCKS: KindRegistry[Kind[Any]] = KindRegistry("block", "block type")
MIXERS: KindRegistry[Kind[Any]] = KindRegistry("mixer", "mixer type")
ATTENTION: KindRegistry[Kind[Any]] = KindRegistry("attention", "attention type")
HEADS: KindRegistry[Kind[Any]] = KindRegistry("head", "head type")
DATASETS: KindRegistry[DatasetKind[Any]] = KindRegistry("dataset", "dataset")
REGISTRIES: dict[str, KindRegistry[Any]] = {
    r.role: r for r in (STEMS, TRANSITIONS, BLOCKS, MIXERS, ATTENTION, HEADS, DATASETS)
}
_BUILTIN = (
    "archdsl.stems",
    "archdsl.transitions",
    "archdsl.mixers",
    "archdsl.attention",
    "archdsl.blocks",
    "archdsl.heads",
    "archdsl.datasets",
)
_loaded = False


def tagged_union(registry: Registry[Any], discriminator: str = "type") -> Any:
    """The discriminated union (on ``discriminator``) of every spec model in ``registry``."""
    specs = tuple(kind.spec for _, kind in registry.items())
    if len(specs) == 1:
        return specs[0]
    return Annotated[Union[specs], Field(discriminator=discriminator)]  # noqa: UP007


def import_submodules(package: str) -> None:
    """Import every module of ``package`` so that each registers its kind (one file per kind)."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def load_kinds() -> None:
    """Import the built-in kinds and every plug-in of the ``archdsl.kinds`` entry-point group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in _BUILTIN:
        import_submodules(package)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        allow_target_package(ep.module.split(".", 1)[0])  # the plug-in's own nn.Module classes
        try:
            loaded = ep.load()
            if callable(loaded):
                loaded()
        except Exception as exc:  # one broken plug-in must not take archdsl down with it
            print(
                f"warning: plug-in '{ep.name}' ({ep.value}, entry point {ENTRY_POINT_GROUP}) was not loaded: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


def close_registries() -> None:
    for registry in REGISTRIES.values():
        registry.closed = True
