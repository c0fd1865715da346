"""Non-local block (Wang et al. 2018, arXiv:1711.07971; ``archdsl.nn.non_local.NonLocal``): a residual
context block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["NonLocalSpec"]


class NonLocalSpec(BlockSpecBase):
    """``x + BN(W_z sum_j f(x_i, x_j) g(x_j) / C(x))``; keeps the channels and the map size."""

    type: Literal["nonlocal"]
    mode: Literal["embedded_gaussian", "gaussian", "dot_product", "concatenation"] = "embedded_gaussian"
    """The pairwise function f and its normalisation C(x) (paper section 3.2)."""
    reduction: int = Field(2, ge=1, le=1024)
    """theta, phi and g have C / reduction channels (the paper: 2); ``gaussian`` has no theta, phi."""
    subsample: bool = False
    """Max-pool phi and g by 2 (the paper's cheaper variant)."""
    zero_init: bool = True
    """Start the output BN's scale at zero, so the block starts as the identity (the paper)."""


def _plan(spec: NonLocalSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    n = h * w
    nj = (-(-h // 2) * -(-w // 2)) if spec.subsample else n
    embed = cost.conv(c, inner, 1, (h, w), bias=True)
    total = embed * (3 if spec.mode != "gaussian" else 1)  # theta, phi, g (gaussian: g only)
    if spec.mode == "concatenation":
        total = total + cost.param(2 * inner) + cost.matmul(1, inner, n) + cost.matmul(1, inner, nj)
    else:
        total = total + cost.matmul(n, c if spec.mode == "gaussian" else inner, nj)  # theta^T phi
    total = total + cost.matmul(n, nj, inner) + cost.conv(inner, c, 1, (h, w)) + cost.batchnorm(c)
    kwargs = {
        "channels": c,
        "inner": inner,
        "mode": spec.mode,
        "subsample": spec.subsample,
        "zero_init": spec.zero_init,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.non_local.NonLocal", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(NonLocalSpec), "subsample": True, "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(NonLocalSpec, _plan, example=_EXAMPLE))
