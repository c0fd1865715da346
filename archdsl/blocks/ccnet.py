"""Recurrent criss-cross attention block (Huang et al. 2019, arXiv:1811.11721;
``archdsl.nn.ccnet.RecurrentCrissCross``): each position attends to its row and column, ``recurrence`` times with
shared weights; keeps the channels and the map size."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["CCNetSpec"]


class CCNetSpec(BlockSpecBase):
    """``x <- x + gamma CCA(x)``, ``recurrence`` times with one set of weights (RCCA); keeps channels and map size."""

    type: Literal["ccnet"]
    reduction: int = Field(8, ge=1, le=1024)
    """Query and key have C / reduction channels (the paper: 8); the value keeps C."""
    recurrence: int = Field(2, ge=1, le=8)
    """Times the criss-cross attention is applied, weights shared (the paper's R: 2 reaches every position)."""


def _plan(spec: CCNetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    step = (
        cost.conv(c, inner, 1, (h, w), bias=True) * 2  # query, key
        + cost.conv(c, c, 1, (h, w), bias=True)  # value
        + cost.matmul(h, inner, h, batch=w)  # column energies: per column, (H x C') @ (C' x H)
        + cost.matmul(w, inner, w, batch=h)  # row energies: per row, (W x C') @ (C' x W)
        + cost.matmul(h, h, c, batch=w)  # column aggregation
        + cost.matmul(w, w, c, batch=h)  # row aggregation
    )
    total = cost.Cost(step.params, step.flops * spec.recurrence) + cost.param(1)  # shared weights; gamma
    kwargs = {"channels": c, "inner": inner, "recurrence": spec.recurrence}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.ccnet.RecurrentCrissCross", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(CCNetSpec)},
        {"type": type_name(CCNetSpec), "reduction": 4, "recurrence": 1},
    ],
}
BLOCKS.add(Kind.of(CCNetSpec, _plan, example=_EXAMPLE))
