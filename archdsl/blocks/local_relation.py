"""Local relation bottleneck (Hu et al. 2019, arXiv:1904.11491; ``archdsl.nn.local_relation``): a residual
block that keeps the map, the ResNet bottleneck with its 3x3 conv replaced by a k x k local relation layer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block, require_divisible
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["LocalRelationSpec"]


class LocalRelationSpec(BlockSpecBase):
    """``ReLU(x + BN(conv1x1(ReLU(BN(LR(ReLU(BN(conv1x1(x)))))))))`` with the LR layer's softmax over each k x k
    window of appearance composability plus geometry prior; keeps the channels and the map size."""

    type: Literal["local_relation"]
    kernel_size: OddKernel = 7
    """Side k of the aggregation window (the paper: 7)."""
    channels_per_group: int = Field(8, ge=1, le=1024)
    """Channel sharing m: this many channels share one set of aggregation weights (the paper: 8)."""
    reduction: int = Field(4, ge=1, le=1024)
    """The LR layer runs on C / reduction channels (the ResNet bottleneck: 4)."""
    geometry_hidden: int = Field(0, ge=0, le=1024)
    """Hidden width of the geometry prior's MLP; 0: the number of groups (C / reduction / m)."""
    composability: Literal["multiplication", "squared_difference"] = "multiplication"
    """The appearance composability: ``q k`` or ``-(q - k)^2`` (forms the paper compares)."""


def _plan(spec: LocalRelationSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    width = c // spec.reduction
    require(width >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    m = spec.channels_per_group
    require_divisible(
        width, m, ctx.path + ".channels_per_group", "the LR layer's width C / reduction", "channels_per_group"
    )
    groups = width // m
    hidden = spec.geometry_hidden or groups
    hw, kk = (h, w), spec.kernel_size**2
    total = (
        cost.conv_bn(c, width, 1, hw)
        + cost.conv(width, groups, 1, hw) * 2  # query and key
        + cost.linear(2, hidden, kk)  # geometry prior
        + cost.linear(hidden, groups, kk)
        + cost.matmul(1, kk, width, batch=h * w)  # aggregation of the window's values, per channel
        + cost.batchnorm(width)
        + cost.conv_bn(width, c, 1, hw)
    )
    kwargs = {
        "channels": c,
        "width": width,
        "kernel_size": spec.kernel_size,
        "group_channels": m,
        "geometry_hidden": hidden,
        "composability": spec.composability,
    }
    target = "archdsl.nn.local_relation.LocalRelationBottleneck"
    return make_node(ctx, "block", spec.type, ctx.in_shape, target, kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(LocalRelationSpec), "channels_per_group": 4}],
}
BLOCKS.add(Kind.of(LocalRelationSpec, _plan, example=_EXAMPLE))
