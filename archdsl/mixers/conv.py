"""Convolutional spatial mixer: the 3x3 conv of a ResNet bottleneck (stride on the 3x3, v1.5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import MIXERS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require_divisible, same_size
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["ConvMixerSpec"]


class ConvMixerSpec(SpecModel):
    """A k x k convolution (no bias) keeping the width; applies the block's stride."""

    type: Literal["conv"]
    kernel_size: OddKernel = 3
    """Kernel size (odd)."""
    groups: int = Field(1, ge=1)
    """Conv groups (ResNeXt-style when > 1; must divide the width)."""


def _plan(spec: ConvMixerSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    require_divisible(c, spec.groups, ctx.path + ".groups", "bottleneck width", "groups")
    k, s = spec.kernel_size, ctx.stride
    ho, wo = (same_size(n, s) for n in (h, w))
    kwargs = {
        "in_channels": c,
        "out_channels": c,
        "kernel_size": k,
        "stride": s,
        "padding": k // 2,
        "groups": spec.groups,
        "bias": False,
    }
    return make_node(
        ctx, "mixer", spec.type, (c, ho, wo), "torch.nn.Conv2d", kwargs, cost.conv(c, c, k, (ho, wo), spec.groups)
    )


_EXAMPLE = {"type": type_name(ConvMixerSpec), "kernel_size": 5, "groups": 2}
MIXERS.add(Kind.of(ConvMixerSpec, _plan, example=_EXAMPLE))
