"""Compact generalised non-local block (Yue et al. 2018, arXiv:1810.13125;
``archdsl.nn.cgnl.CompactGeneralizedNonLocal``): a residual context block that keeps the map, placed between
the conv blocks of a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["CGNLSpec"]


class CGNLSpec(BlockSpecBase):
    """``x + GN(W_z y)``, ``y_{i,c} = sum_{j,c'} f(theta_{i,c}, phi_{j,c'}) g_{j,c'}`` within each channel group,
    computed in the compact form linear in H*W; keeps the channels and the map size."""

    type: Literal["cgnl"]
    reduction: int = Field(2, ge=1, le=1024)
    """theta, phi and g have C / reduction channels (the paper: 2)."""
    groups: int = Field(8, ge=1, le=256)
    """Channel groups G: the kernel relates channels of a group only; also the groups of the output conv and
    of the GroupNorm (the authors' ResNet-50 models: 8). Must divide C and C / reduction."""
    kernel: Literal["dot", "gaussian"] = "dot"
    """The pairwise kernel: the dot product, or the Gaussian RBF kernel Taylor-expanded to ``order``."""
    order: int = Field(3, ge=0, le=16)
    """Order P of the Taylor expansion of the Gaussian kernel (``kernel: gaussian`` only)."""
    gamma: float = Field(1e-4, gt=0.0, le=1.0)
    """gamma of the Gaussian kernel ``exp(-gamma (x - y)^2)`` (the authors' code: 1e-4)."""
    zero_init: bool = True
    """Start the GroupNorm's scale at zero, so the block starts as the identity (the authors' code)."""


def _plan(spec: CGNLSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    require(
        inner % spec.groups == 0 and c % spec.groups == 0,
        ctx.path + ".groups",
        f"groups={spec.groups} must divide the block's {c} channels and its C / reduction = {inner} inner channels",
    )
    hw = (h, w)
    length = inner // spec.groups * h * w  # L = C_g N entries per group
    terms = spec.order + 1 if spec.kernel == "gaussian" else 1
    total = (
        cost.conv(c, inner, 1, hw) * 3  # theta, phi, g
        + cost.matmul(terms, length, 1, batch=spec.groups)  # sum_{j,c'} b_p(phi) g
        + cost.matmul(1, terms, length, batch=spec.groups)  # sum_p a_p(theta) (...)
        + cost.conv(inner, c, 1, hw, groups=spec.groups)
        + cost.param(2 * c)  # GroupNorm
    )
    kwargs = {
        "channels": c,
        "inner": inner,
        "groups": spec.groups,
        "kernel": spec.kernel,
        "order": spec.order,
        "gamma": spec.gamma,
        "zero_init": spec.zero_init,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.cgnl.CompactGeneralizedNonLocal", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(CGNLSpec), "groups": 4, "kernel": "gaussian", "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(CGNLSpec, _plan, example=_EXAMPLE))
