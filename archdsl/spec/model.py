"""The model spec: input, stem, stages of blocks, head.

Block, mixer, attention, stem, transition, head and dataset specs are discriminated unions on ``type`` (or
``name``), built from the registries once every kind is loaded (the built-in ones and the ``archdsl.kinds``
plug-ins); nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from archdsl.errors import brief
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

__all__ = ["InputSpec", "ModelSpec", "StageSpec", "Stride"]

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


def _stride(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One problem line for a bad stride instead of one per member of the union."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            "must be an integer 1 to 4 (down-sampling) or '1/2' or '1/4' (up-sampling by a transition that "
            f"up-samples, e.g. carafe), got {brief(value)}"
        ) from None


Stride = Annotated[Annotated[int, Field(ge=1, le=4)] | Literal["1/2", "1/4"], WrapValidator(_stride)]
"""A stage's stride: an integer s shrinks the map s times; ``1/2`` or ``1/4`` grows it 2 or 4 times.

Up-sampling is written as a fractional stride rather than a separate ``upsample: k`` field because a stage
has one scale change: one field cannot say two contradictory things (``stride: 2`` with ``upsample: 2``),
``stride 1/2`` is the usual name of an up-sampling (fractionally strided) layer, and the quantities derived
from it stay one quantity, the total stride of the model (1/2 of a 16 px input is a 32x32 map, a feature
``reduction`` of 0.5). YAML reads ``1/2`` unquoted as the string ``"1/2"``, and the canonical dump writes it
back the same way; integer strides keep their meaning.
"""


class StageSpec(SpecModel):
    """A stage: optional transition, optional position embedding, then blocks; output has ``channels``."""

    channels: int = Field(gt=0)
    """Output channels of the stage."""
    stride: Stride = 1
    """Stride 1 to 4 (by the transition if any, else the first block), or 1/2, 1/4 (by an up-sampling transition)."""
    transition: TransitionSpec | None = None
    """Explicit layer at the stage start that applies the stride (VOLO's patch merge; CARAFE up-samples)."""
    pos_embed: bool = False
    """Add a learned absolute position embedding (C, H, W) after the transition."""
    blocks: list[BlockSpec] = Field(min_length=1)
    """Block entries, each repeated ``repeat`` times."""

    @property
    def downsample(self) -> int:
        """The integer stride s (1 for an up-sampling stage)."""
        return self.stride if isinstance(self.stride, int) else 1

    @property
    def upsample(self) -> int:
        """The factor k of ``stride: 1/k`` (1 for an integer stride)."""
        return int(self.stride.removeprefix("1/")) if isinstance(self.stride, str) else 1


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
