"""Patch merging: a non-overlapping s x s conv with stride s (VOLO's down-sampling, arXiv:2106.13112)."""

from __future__ import annotations

from typing import Literal

from archdsl.kinds import TRANSITIONS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import SpecModel

__all__ = ["PatchMergeSpec"]


class PatchMergeSpec(SpecModel):
    """Conv with kernel = stride = the stage's stride (with bias), to the stage's channels."""

    type: Literal["patch_merge"]


def _plan(spec: PatchMergeSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    s, out = ctx.stride, ctx.out_channels
    require(
        h % s == 0 and w % s == 0,
        ctx.path,
        f"feature map {h}x{w} must be divisible by the stage stride {s}{ctx.where()}",
    )
    kwargs = {"in_channels": c, "out_channels": out, "kernel_size": s, "stride": s}
    return make_node(
        ctx,
        "transition",
        spec.type,
        (out, h // s, w // s),
        "torch.nn.Conv2d",
        kwargs,
        cost.conv(c, out, s, (h // s, w // s), bias=True),
    )


_EXAMPLE = {
    "channels": 24,
    "stride": 2,
    "transition": {"type": type_name(PatchMergeSpec)},
    "blocks": [{"type": "bottleneck"}],
}
TRANSITIONS.add(Kind.of(PatchMergeSpec, _plan, example=_EXAMPLE))
