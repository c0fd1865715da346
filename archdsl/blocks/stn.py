"""Spatial transformer (Jaderberg et al. 2015, arXiv:1506.02025; ``archdsl.nn.stn.SpatialTransformer``): a
learned affine warp that keeps the channels and the map size, usable in any stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["STNSpec"]


class STNSpec(BlockSpecBase):
    """``grid_sample(x, affine_grid(theta(x)))``: a learned affine warp; keeps the channels and the map size.

    A localisation net (conv, ReLU, adaptive average pool, linear, ReLU, linear) predicts theta, starting at
    the identity; bilinear sampling, zeros outside the map; no residual."""

    type: Literal["stn"]
    loc_channels: int = Field(16, ge=1, le=1024)
    """Output channels of the localisation net's conv."""
    loc_kernel: OddKernel = 3
    """Kernel side of the localisation net's conv."""
    pool_size: int = Field(4, ge=1, le=32)
    """The conv's output is average-pooled (adaptive) to pool_size x pool_size before the linear layers."""
    hidden: int = Field(32, ge=1, le=4096)
    """Hidden units of the localisation net's first linear layer."""
    align_corners: bool = False
    """Normalised coordinates -1, 1 are the border pixels' outer edges (false) or their centres (true)."""


def _plan(spec: STNSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    p = spec.pool_size
    require(
        p <= min(h, w),
        ctx.path + ".pool_size",
        f"pool_size={p} must be at most the sides of the {h}x{w} feature map{ctx.where()}",
    )
    # affine_grid (6 multiply-adds a pixel) and grid_sample (4 a pixel and channel) are free, as FlopCounterMode counts
    total = (
        cost.conv(c, spec.loc_channels, spec.loc_kernel, (h, w), bias=True)
        + cost.linear(spec.loc_channels * p * p, spec.hidden, 1)
        + cost.linear(spec.hidden, 6, 1)
    )
    kwargs = {
        "channels": c,
        "loc_channels": spec.loc_channels,
        "loc_kernel": spec.loc_kernel,
        "pool_size": p,
        "hidden": spec.hidden,
        "align_corners": spec.align_corners,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.stn.SpatialTransformer", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(STNSpec), "loc_channels": 8, "hidden": 16}],
}
BLOCKS.add(Kind.of(STNSpec, _plan, example=_EXAMPLE))
