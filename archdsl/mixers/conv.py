"""Convolutional spatial mixer: the 3x3 conv of a ResNet bottleneck (stride on the 3x3, v1.5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from archdsl.plan.cost import conv
from archdsl.plan.kind import MIXERS, Kind
from archdsl.plan.rules import out_size, require_divisible
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["ConvMixerSpec"]


class ConvMixerSpec(SpecModel):
    """A k x k convolution (no bias) keeping the width; applies the block's stride."""

    type: Literal["conv"]
    kernel_size: OddKernel = 3
    """Kernel size (odd)."""
    groups: int = Field(1, ge=1)
    """Conv groups (ResNeXt-style when > 1; must divide the width)."""


def _plan(spec: ConvMixerSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    require_divisible(c, spec.groups, ctx.path + ".groups", "bottleneck width", "groups")
    k = spec.kernel_size
    ho, wo = (out_size(n, k, ctx.stride, k // 2, ctx, ctx.path + ".kernel_size") for n in (h, w))
    return Planned((c, ho, wo), conv(c, c, k, (ho, wo), spec.groups))


def _build(spec: ConvMixerSpec, ctx: Ctx) -> nn.Module:
    c = ctx.in_shape[0]
    k = spec.kernel_size
    return nn.Conv2d(c, c, k, ctx.stride, k // 2, groups=spec.groups, bias=False)


_EXAMPLE = {"type": "conv", "kernel_size": 5, "groups": 2}
MIXERS.register("conv", Kind("conv", ConvMixerSpec, _plan, _build, example=_EXAMPLE))
