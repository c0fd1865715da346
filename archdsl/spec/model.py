"""The model spec: input, stem, stages of blocks, head.

Block, mixer, stem, transition and head specs are discriminated unions on ``type``, built from the
registries, so a new block type is one new file in ``archdsl/blocks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import Field, PrivateAttr

import archdsl.blocks
import archdsl.heads
import archdsl.stems
import archdsl.transitions  # noqa: F401  (registers every kind)
from archdsl.plan.kind import BLOCKS, HEADS, STEMS, TRANSITIONS, tagged_union
from archdsl.spec.base import SpecModel
from archdsl.spec.train import TrainSpec

__all__ = ["BlockSpec", "HeadSpec", "InputSpec", "ModelSpec", "StageSpec", "StemSpec"]

if TYPE_CHECKING:  # the unions are built from the registries at import time
    BlockSpec: TypeAlias = Any
    StemSpec: TypeAlias = Any
    HeadSpec: TypeAlias = Any
    TransitionSpec: TypeAlias = Any
else:
    BlockSpec = tagged_union(BLOCKS)
    StemSpec = tagged_union(STEMS)
    HeadSpec = tagged_union(HEADS)
    TransitionSpec = tagged_union(TRANSITIONS)


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
    """The :class:`~archdsl.spec.source.SourceDoc` it was read from, for locating errors."""

    def __eq__(self, other: object) -> bool:
        """Equal when the values are equal, wherever each was read from."""
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]
