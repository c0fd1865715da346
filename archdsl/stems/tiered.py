"""Tiered deep stem: a stack of 3x3 conv + BN + act layers, the first strided, optionally a 3x3/2 max pool
(``archdsl.nn.tiered_stem.TieredStem``).

The deep stem of ResNet-D (Bag of Tricks for Image Classification with Convolutional Neural Networks,
He et al. 2019, arXiv:1812.01187: three 3x3 convs replacing the 7x7) with per-layer ("tiered") widths, as
in the HaloNet-style ResNet variants (default widths 24, 32, 64). Any number of layers is allowed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import STEMS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import same_size
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, SpecModel

__all__ = ["TieredStemSpec"]


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


def _plan(spec: TieredStemSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    ho, wo = (same_size(n, spec.stride) for n in (h, w))
    total = cost.Cost()
    for out in spec.channels:
        total = total + cost.conv_bn(c, out, 3, (ho, wo))
        c = out
    if spec.pool == "max":
        ho, wo = (same_size(n, 2) for n in (ho, wo))
    kwargs = {
        "in_channels": ctx.in_shape[0],
        "channels": list(spec.channels),
        "stride": spec.stride,
        "pool": spec.pool == "max",
        "act": spec.act,
    }
    return make_node(ctx, "stem", spec.type, (c, ho, wo), "archdsl.nn.tiered_stem.TieredStem", kwargs, total)


_EXAMPLE = {"type": type_name(TieredStemSpec), "channels": [8, 12, 16], "stride": 2, "pool": "max"}
STEMS.add(Kind.of(TieredStemSpec, _plan, example=_EXAMPLE))
