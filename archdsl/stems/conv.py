"""Single-conv stem: ``conv k/s -> BN -> act [-> 3x3/2 max pool]`` (``archdsl.nn.conv_stem.ConvStem``).

With ``kernel_size: 7, stride: 2, pool: max`` it is the ResNet stem (He et al. 2016, arXiv:1512.03385).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import STEMS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import same_size
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, OddKernel, SpecModel

__all__ = ["ConvStemSpec"]


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


def _plan(spec: ConvStemSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    k, s = spec.kernel_size, spec.stride
    ho, wo = (same_size(n, s) for n in (h, w))
    c_cost = cost.conv_bn(c, spec.channels, k, (ho, wo))
    if spec.pool == "max":
        ho, wo = (same_size(n, 2) for n in (ho, wo))
    kwargs = {
        "in_channels": c,
        "channels": spec.channels,
        "kernel_size": k,
        "stride": s,
        "pool": spec.pool == "max",
        "act": spec.act,
    }
    return make_node(ctx, "stem", spec.type, (spec.channels, ho, wo), "archdsl.nn.conv_stem.ConvStem", kwargs, c_cost)


_EXAMPLE = {"type": type_name(ConvStemSpec), "channels": 16, "kernel_size": 7, "stride": 2, "pool": "max"}
STEMS.add(Kind.of(ConvStemSpec, _plan, example=_EXAMPLE))
