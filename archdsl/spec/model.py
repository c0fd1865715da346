"""The model spec: input, stem, stages of blocks, head.

Block, mixer, attention, stem, transition, head and dataset specs are discriminated unions on ``type`` (or
``name``), built from the registries once every kind is loaded (the built-in ones and the ``archdsl.kinds``
plug-ins); nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from archdsl.kinds import (
    ATTENTION,
    BLOCKS,
    DATASETS,
    HEADS,
    MIXERS,
    REGISTRIES,
    STEMS,
    TRANSITIONS,
    close_registries,
    load_kinds,
    tagged_union,
)
from archdsl.spec.base import SpecModel
from archdsl.spec.train import TrainSpec

if TYPE_CHECKING:
    from archdsl.spec.source import SourceDoc

__all__ = ["InputSpec", "ModelSpec", "StageSpec"]

if TYPE_CHECKING:  # the unions of the registered kinds, filled in below by _build_models()
    BlockSpec = Any
    StemSpec = Any
    HeadSpec = Any
    TransitionSpec = Any


class InputSpec(SpecModel):
    """The input image."""

    channels: int = Field(3, gt=0)
    """Image channels."""
    size: int = Field(gt=0)
    """Square image side in pixels."""


class StageSpec(SpecModel):
    """A stage: optional transition, optional position embedding, then blocks; output has ``channels``."""

    channels: int = Field(gt=0)
    """Output channels of the stage."""
    stride: int = Field(1, ge=1, le=4)
    """Spatial stride, applied by the transition if there is one, else by the first block."""
    transition: TransitionSpec | None = None
    """Explicit down-sampling layer at the stage start (e.g. VOLO's patch merge)."""
    pos_embed: bool = False
    """Add a learned absolute position embedding (C, H, W) after the transition."""
    blocks: list[BlockSpec] = Field(min_length=1)
    """Block entries, each repeated ``repeat`` times."""


class ModelSpec(SpecModel):
    """A vision backbone with its classification head."""

    version: Literal[1] = 1
    """Spec format version."""
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    """Model name, an identifier (used for the exported class name)."""
    input: InputSpec
    """Input image."""
    stem: StemSpec
    """The stem."""
    stages: list[StageSpec] = Field(min_length=1)
    """Stages in order."""
    head: HeadSpec
    """The head."""
    train: TrainSpec = Field(default_factory=TrainSpec)
    """How to train it (``archdsl train``)."""

    _source: Any = PrivateAttr(default=None)

    @property
    def source(self) -> SourceDoc | None:
        """The YAML this spec was read from, with the location of every value (``None`` for specs built
        in code); errors found later (shapes, data) are located through it."""
        return self._source

    def with_source(self, source: SourceDoc | None) -> ModelSpec:
        """This spec, remembering ``source`` (see :attr:`source`)."""
        self._source = source
        return self

    def __eq__(self, other: object) -> bool:
        """Equal when the values are equal, wherever each was read from."""
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]


def _build_models() -> None:
    """Resolve every ``...Spec`` union from the registries, then close them (late kinds are refused)."""
    load_kinds()
    namespace = {
        "BlockSpec": tagged_union(BLOCKS),
        "StemSpec": tagged_union(STEMS),
        "HeadSpec": tagged_union(HEADS),
        "TransitionSpec": tagged_union(TRANSITIONS),
        "MixerSpec": tagged_union(MIXERS),
        "AttentionSpec": tagged_union(ATTENTION),
        "DataSpec": tagged_union(DATASETS, discriminator="name"),
    }
    kind_specs: list[type[BaseModel]] = [k.spec for r in REGISTRIES.values() for _, k in r.items()]
    models: list[type[BaseModel]] = [*kind_specs, *_train_models(), StageSpec, ModelSpec]
    for _ in range(2):  # a second pass completes models that embed others rebuilt in the first
        for model in models:
            model.model_rebuild(force=True, _types_namespace=namespace)
    close_registries()


def _train_models() -> list[type[BaseModel]]:
    from archdsl.spec import train

    return [m for m in vars(train).values() if isinstance(m, type) and issubclass(m, SpecModel)]


_build_models()
