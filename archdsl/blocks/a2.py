"""Double attention block (Chen et al. 2018, "A^2-Nets: Double Attention Networks", arXiv:1810.11579;
``archdsl.nn.a2.DoubleAttention``): gather ``G = A softmax_N(B)^T``, distribute ``z_i = G softmax(v_i)``, a 1x1
conv back to C, residual; keeps the channels and the map size."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["DoubleAttentionSpec", "a2_width"]

Width = Annotated[int, Field(ge=1, le=8192)] | Annotated[float, Field(gt=0.0, le=1.0)]


class DoubleAttentionSpec(BlockSpecBase):
    """``x + W_out (A softmax_N(B)^T) softmax_n(V)``; keeps the channels and the map size."""

    type: Literal["a2"]
    c_m: Width = 0.25
    """Channels of A (the gathered features), so of each global descriptor: an integer is a count, a number
    in (0, 1] a fraction of the block's channels C, rounded down. Default C / 4, a reduction like the
    paper's (its exact per-stage widths were not checked here)."""
    c_n: Width = 0.25
    """Number of global descriptors (the attention maps B and the attention vectors' length): an integer is a
    count, a number in (0, 1] a fraction of C, rounded down (default C / 4)."""
    zero_init: bool = True
    """Start the output 1x1 conv at zero, so the block starts as the identity (not in the paper)."""


def a2_width(value: int | float, channels: int) -> int:
    """An integer count as it is, a fraction of ``channels`` rounded down."""
    return value if isinstance(value, int) else int(value * channels)


def _plan(spec: DoubleAttentionSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    c_m, c_n = a2_width(spec.c_m, c), a2_width(spec.c_n, c)
    require(c_m >= 1, ctx.path + ".c_m", f"c_m={spec.c_m} leaves no channels of {c}")
    require(c_n >= 1, ctx.path + ".c_n", f"c_n={spec.c_n} leaves no descriptors of {c} channels")
    n = h * w
    total = (
        cost.conv(c, c_m, 1, (h, w), bias=True)  # phi
        + cost.conv(c, c_n, 1, (h, w), bias=True) * 2  # theta, rho
        + cost.matmul(c_m, n, c_n)  # G = A B^T
        + cost.matmul(c_m, c_n, n)  # Z = G V
        + cost.conv(c_m, c, 1, (h, w), bias=True)  # out
    )
    kwargs = {"channels": c, "c_m": c_m, "c_n": c_n, "zero_init": spec.zero_init}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.a2.DoubleAttention", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(DoubleAttentionSpec), "c_n": 4, "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(DoubleAttentionSpec, _plan, example=_EXAMPLE))
