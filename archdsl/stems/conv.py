"""Single-conv stem: ``conv k/s -> BN -> act [-> 3x3/2 max pool]``.

With ``kernel_size: 7, stride: 2, pool: max`` it is the ResNet stem (He et al. 2016, arXiv:1512.03385).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from archdsl.layers.act import ActName
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.plan.kind import STEMS, Kind
from archdsl.plan.rules import out_size
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["ConvStem", "ConvStemSpec"]


class ConvStemSpec(SpecModel):
    """One conv + BN + activation, optionally followed by a 3x3/2 max pool."""

    type: Literal["conv"]
    channels: int = Field(gt=0)
    """Output channels."""
    kernel_size: OddKernel = 3
    """Conv kernel (odd)."""
    stride: int = Field(1, ge=1, le=4)
    """Conv stride."""
    pool: Literal["none", "max"] = "none"
    """``max``: a 3x3 max pool with stride 2 and padding 1 after the conv."""
    act: ActName = "relu"
    """Activation."""


class ConvStem(nn.Sequential):
    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, pool: bool, act: str) -> None:
        layers: list[nn.Module] = [ConvBN(in_channels, channels, kernel_size, stride, act=act)]
        if pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        super().__init__(*layers)


def _plan(spec: ConvStemSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    k, s = spec.kernel_size, spec.stride
    ho, wo = (out_size(n, k, s, k // 2, ctx, ctx.path + ".kernel_size") for n in (h, w))
    cost = conv_bn_cost(c, spec.channels, k, (ho, wo))
    if spec.pool == "max":
        ho, wo = (out_size(n, 3, 2, 1, ctx, ctx.path + ".pool") for n in (ho, wo))
    return Planned((spec.channels, ho, wo), cost)


def _build(spec: ConvStemSpec, ctx: Ctx) -> nn.Module:
    return ConvStem(ctx.in_shape[0], spec.channels, spec.kernel_size, spec.stride, spec.pool == "max", spec.act)


_EXAMPLE = {"type": "conv", "channels": 16, "kernel_size": 7, "stride": 2, "pool": "max"}
STEMS.register("conv", Kind("conv", ConvStemSpec, _plan, _build, example=_EXAMPLE))
