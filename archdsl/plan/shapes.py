"""Planned shapes and costs of every part of a model (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archdsl.plan.cost import Cost

__all__ = ["Ctx", "ModelPlan", "PartPlan", "Planned", "Shape", "StagePlan"]

Shape = tuple[int, ...]
"""(C, H, W) at block boundaries; (num_classes,) after the head."""


@dataclass(frozen=True)
class Ctx:
    """What a part's shape rule and builder know besides its spec."""

    in_shape: Shape
    """Input (C, H, W)."""
    path: str
    """Dotted spec path of the part, e.g. ``stages.1.blocks.0``."""
    out_channels: int = 0
    """The stage's output channels (blocks and transitions); 0 where it does not apply."""
    stride: int = 1
    """Spatial stride this part must apply."""
    repeat: int = 0
    """0-based repeat index of a block entry."""
    input_size: int = 0
    """The model's input size in pixels, for messages."""
    in_stride: int = 1
    """Total stride of the model at this part's input, for messages."""
    drop_path: float = 0.0
    """Stochastic-depth probability of this block's residual branch."""

    def where(self) -> str:
        """`` (input 600 px, stride 8)`` for messages."""
        return f" (input {self.input_size} px, stride {self.in_stride})" if self.input_size else ""


@dataclass(frozen=True)
class Planned:
    """A shape rule's answer: the output shape and the analytic cost."""

    out_shape: Shape
    cost: Cost


@dataclass(frozen=True)
class PartPlan:
    """Stem, transition, position embedding, block or head: where, what, shapes, cost, and how to build."""

    path: str
    type: str
    in_shape: Shape
    out_shape: Shape
    params: int
    flops: int
    spec: Any = field(default=None, repr=False, compare=False)
    """The part's spec model."""
    ctx: Ctx | None = field(default=None, repr=False, compare=False)
    build: Callable[[Any, Ctx], Any] | None = field(default=None, repr=False, compare=False)
    """The registered builder (called by the compiler)."""


@dataclass(frozen=True)
class StagePlan:
    index: int
    in_shape: Shape
    out_shape: Shape
    parts: tuple[PartPlan, ...]

    @property
    def params(self) -> int:
        return sum(p.params for p in self.parts)

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.parts)


@dataclass(frozen=True)
class ModelPlan:
    name: str
    input: Shape
    stem: PartPlan
    stages: tuple[StagePlan, ...]
    head: PartPlan
    output: Shape = field(default=())

    @property
    def params(self) -> int:
        return self.stem.params + sum(s.params for s in self.stages) + self.head.params

    @property
    def flops(self) -> int:
        return self.stem.flops + sum(s.flops for s in self.stages) + self.head.flops

    def to_json(self) -> dict[str, object]:
        """The ``archdsl summary --json`` object."""
        return {
            "name": self.name,
            "params": self.params,
            "flops": self.flops,
            "input": list(self.input),
            "output": list(self.output),
            "stages": [
                {"index": s.index, "output": list(s.out_shape), "params": s.params, "flops": s.flops}
                for s in self.stages
            ],
        }
