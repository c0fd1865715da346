"""Patch merging: a non-overlapping s x s conv with stride s (VOLO's down-sampling, arXiv:2106.13112)."""

from __future__ import annotations

from typing import Literal

from torch import nn

from archdsl.plan.cost import conv
from archdsl.plan.kind import TRANSITIONS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["PatchMergeSpec"]


class PatchMergeSpec(SpecModel):
    """Conv with kernel = stride = the stage's stride (with bias), to the stage's channels."""

    type: Literal["patch_merge"]


def _plan(spec: PatchMergeSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    s = ctx.stride
    require(
        h % s == 0 and w % s == 0,
        ctx.path,
        f"feature map {h}x{w} must be divisible by the stage stride {s}{ctx.where()}",
    )
    return Planned((ctx.out_channels, h // s, w // s), conv(c, ctx.out_channels, s, (h // s, w // s), bias=True))


def _build(spec: PatchMergeSpec, ctx: Ctx) -> nn.Module:
    return nn.Conv2d(ctx.in_shape[0], ctx.out_channels, ctx.stride, ctx.stride)


_EXAMPLE = {
    "channels": 24,
    "stride": 2,
    "transition": {"type": "patch_merge"},
    "blocks": [{"type": "bottleneck"}],
}
TRANSITIONS.register("patch_merge", Kind("patch_merge", PatchMergeSpec, _plan, _build, example=_EXAMPLE))
