"""Squeeze-and-Excitation Networks (Hu et al. 2018, arXiv:1709.01507) as attached attention
(``archdsl.nn.se.SqueezeExcite``): ``x * sigmoid(W2 act(W1 mean_hw(x) + b1) + b2)``.

The reduced width is ``C / reduction`` rounded to the nearest multiple of ``divisor`` (timm's SE-ResNet
rounds to multiples of 8; for its widths the result is exactly C/16), at least ``divisor``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import ATTENTION, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, SpecModel

__all__ = ["SESpec", "se_node", "se_width"]


class SESpec(SpecModel):
    """Channel gates from the globally average-pooled map through a two-layer bottleneck."""

    type: Literal["se"]
    reduction: float = Field(16.0, ge=1.0, le=1024.0)
    """r: the gates' hidden width is C / r (the paper's r = 16)."""
    divisor: int = Field(1, ge=1, le=64)
    """Round the hidden width to the nearest multiple of this."""
    act: ActName = "relu"
    """Activation between the two layers (the paper: ReLU)."""


def se_width(channels: int, reduction: float, divisor: int = 1) -> int:
    """``C / r`` rounded to the nearest multiple of ``divisor`` (halves up), at least ``divisor``."""
    return max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)


def se_node(ctx: Ctx, channels: int, reduced: int, act: str) -> Node:
    """The SE module on the map of ``ctx`` (also MBConv's built-in EfficientNet SE)."""
    kwargs = {"channels": channels, "reduced": reduced, "act": act}
    c = cost.conv(channels, reduced, 1, (1, 1), bias=True) + cost.conv(reduced, channels, 1, (1, 1), bias=True)
    return make_node(ctx, "attention", type_name(SESpec), ctx.in_shape, "archdsl.nn.se.SqueezeExcite", kwargs, c)


def _plan(spec: SESpec, ctx: Ctx) -> Node:
    c = ctx.in_shape[0]
    return se_node(ctx, c, se_width(c, spec.reduction, spec.divisor), spec.act)


ATTENTION.add(Kind.of(SESpec, _plan, example={"type": type_name(SESpec), "reduction": 4}))
