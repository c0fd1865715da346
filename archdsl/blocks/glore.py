"""Global reasoning unit (Chen et al. 2019, arXiv:1811.12814; ``archdsl.nn.glore.GloRe``): a residual
context block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["GloReSpec"]


class GloReSpec(BlockSpecBase):
    """``x + BN(W Z^T B)``, ``Z = ReLU((I - A_g) B phi(x)^T) W_g``; keeps the channels and the map size."""

    type: Literal["glore"]
    states: float = Field(0.5, gt=0.0, le=4.0)
    """State channels C' = states * C (the authors' ResNet models: C' = 2 * num_mid = C / 2)."""
    nodes: float = Field(0.25, gt=0.0, le=4.0)
    """Graph nodes N = nodes * C (the authors' ResNet models: N = num_mid = C / 4)."""
    normalize: bool = False
    """Divide the projected node features by the number of positions H*W (the authors' option)."""
    zero_init: bool = True
    """Start the output BN's scale at zero, so the block starts as the identity (the authors' code)."""


def _width(ratio: float, c: int, path: str, what: str) -> int:
    exact = ratio * c
    require(
        abs(exact - round(exact)) < 1e-9 and round(exact) >= 1,
        path,
        f"{what} = {path.rsplit('.', 1)[1]} * C must be a positive integer, got {ratio}*{c}={exact:g}",
    )
    return round(exact)


def _plan(spec: GloReSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    s = _width(spec.states, c, ctx.path + ".states", "state channels C'")
    nn_ = _width(spec.nodes, c, ctx.path + ".nodes", "node count N")
    hw = (h, w)
    total = (
        cost.conv(c, s, 1, hw, bias=True)  # phi
        + cost.conv(c, nn_, 1, hw, bias=True)  # theta: B
        + cost.matmul(nn_, h * w, s)  # V = B phi(x)^T
        + cost.conv(nn_, nn_, 1, (s, 1), bias=True)  # node-wise conv1d
        + cost.conv(s, s, 1, (nn_, 1))  # state-wise conv1d W_g
        + cost.matmul(s, nn_, h * w)  # reverse projection
        + cost.conv(s, c, 1, hw)
        + cost.batchnorm(c)
    )
    kwargs = {"channels": c, "states": s, "nodes": nn_, "normalize": spec.normalize, "zero_init": spec.zero_init}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.glore.GloRe", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(GloReSpec), "zero_init": False}],
}
BLOCKS.add(Kind.of(GloReSpec, _plan, example=_EXAMPLE))
