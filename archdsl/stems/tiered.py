"""Tiered deep stem: a stack of 3x3 conv + BN + act layers, the first strided, optionally a 3x3/2 max pool.

The deep stem of ResNet-D (Bag of Tricks for Image Classification with Convolutional Neural Networks,
He et al. 2019, arXiv:1812.01187: three 3x3 convs replacing the 7x7) with per-layer ("tiered") widths, as
in the HaloNet-style ResNet variants (default widths 24, 32, 64). Any number of layers is allowed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import nn

from archdsl.layers.act import ActName
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.plan.cost import Cost
from archdsl.plan.kind import STEMS, Kind
from archdsl.plan.rules import out_size
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["TieredStem", "TieredStemSpec"]


class TieredStemSpec(SpecModel):
    """3x3 conv + BN + act layers of the given widths (first one strided), then an optional max pool."""

    type: Literal["tiered"]
    channels: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [24, 32, 64], min_length=1, max_length=8
    )
    """Output channels of each 3x3 conv layer; the stem outputs the last."""
    stride: int = Field(2, ge=1, le=4)
    """Stride of the first conv (the others have stride 1)."""
    pool: Literal["none", "max"] = "none"
    """``max``: a 3x3 max pool with stride 2 and padding 1 after the convs."""
    act: ActName = "relu"
    """Activation after every conv."""


class TieredStem(nn.Sequential):
    def __init__(
        self, in_channels: int, channels: list[int], stride: int = 2, pool: bool = False, act: str = "relu"
    ) -> None:
        layers: list[nn.Module] = []
        c = in_channels
        for i, out in enumerate(channels):
            layers.append(ConvBN(c, out, 3, stride if i == 0 else 1, act=act))
            c = out
        if pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        super().__init__(*layers)


def _plan(spec: TieredStemSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    ho, wo = (out_size(n, 3, spec.stride, 1, ctx, ctx.path + ".stride") for n in (h, w))
    cost = Cost()
    for out in spec.channels:
        cost = cost + conv_bn_cost(c, out, 3, (ho, wo))
        c = out
    if spec.pool == "max":
        ho, wo = (out_size(n, 3, 2, 1, ctx, ctx.path + ".pool") for n in (ho, wo))
    return Planned((c, ho, wo), cost)


def _build(spec: TieredStemSpec, ctx: Ctx) -> nn.Module:
    return TieredStem(ctx.in_shape[0], list(spec.channels), spec.stride, spec.pool == "max", spec.act)


_EXAMPLE = {"type": "tiered", "channels": [8, 12, 16], "stride": 2, "pool": "max"}
STEMS.register("tiered", Kind("tiered", TieredStemSpec, _plan, _build, example=_EXAMPLE))
