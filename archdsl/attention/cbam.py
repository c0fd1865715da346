"""CBAM: Convolutional Block Attention Module (Woo et al. 2018, arXiv:1807.06521) as attached attention
(``archdsl.nn.cbam.ConvBlockAttention``): channel gates, then spatial gates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import ATTENTION, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["CBAMSpec"]


class CBAMSpec(SpecModel):
    """Channel attention (shared MLP on average- and max-pooled maps), then spatial attention (k x k conv)."""

    type: Literal["cbam"]
    reduction: float = Field(16.0, ge=1.0, le=1024.0)
    """r: the MLP's hidden width is floor(C / r), at least 1 (the paper's r = 16)."""
    kernel_size: OddKernel = 7
    """Side of the spatial attention's conv (the paper: 7)."""


def _plan(spec: CBAMSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    hidden = max(1, int(c / spec.reduction))
    k = spec.kernel_size
    mlp = cost.conv(c, hidden, 1, (1, 1), bias=True) + cost.conv(hidden, c, 1, (1, 1), bias=True)
    mlp = cost.Cost(mlp.params, 2 * mlp.flops)  # shared by the average- and the max-pooled map
    spatial = cost.conv(2, 1, k, (h, w)) + cost.batchnorm(1)
    return make_node(
        ctx,
        "attention",
        spec.type,
        ctx.in_shape,
        "archdsl.nn.cbam.ConvBlockAttention",
        {"channels": c, "hidden": hidden, "kernel_size": k},
        mlp + spatial,
    )


ATTENTION.add(Kind.of(CBAMSpec, _plan, example={"type": type_name(CBAMSpec), "reduction": 4, "kernel_size": 3}))
