"""Dual attention block (Fu et al. 2019, arXiv:1809.02983; ``archdsl.nn.danet.DualAttention``): position attention
over the N positions and channel attention over the C channels, summed with the input; keeps the channels and
the map size."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["DANetSpec"]


class DANetSpec(BlockSpecBase):
    """``x + gamma_p PAM(x) + gamma_c CAM(x)``, both gammas starting at zero; keeps the channels and the map size."""

    type: Literal["danet"]
    branches: Literal["both", "position", "channel"] = "both"
    """Both attention modules summed (the paper's DANet), or only the position / channel one (its table 1)."""
    reduction: int = Field(8, ge=1, le=1024)
    """The position module's query and key have C / reduction channels (the paper: 8); unused by ``channel``."""
    channel_logits: Literal["max_minus_energy", "energy"] = "max_minus_energy"
    """Channel softmax logits: ``max_d e_cd - e_cd`` (the authors' code) or ``e_cd`` (the paper's eq. 3)."""


def _plan(spec: DANetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    n = h * w
    inner = c // spec.reduction
    total = cost.Cost()
    if spec.branches in ("both", "position"):
        require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
        total = total + cost.conv(c, inner, 1, (h, w), bias=True) * 2 + cost.conv(c, c, 1, (h, w), bias=True)
        total = total + cost.matmul(n, inner, n) + cost.matmul(c, n, n) + cost.param(1)  # q^T k, v attn^T, gamma
    if spec.branches in ("both", "channel"):
        total = total + cost.matmul(c, n, c) + cost.matmul(c, c, n) + cost.param(1)  # X X^T, attn X, gamma
    kwargs = {"channels": c, "inner": inner, "branches": spec.branches, "channel_logits": spec.channel_logits}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.danet.DualAttention", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(DANetSpec)},
        {"type": type_name(DANetSpec), "branches": "position", "reduction": 4},
        {"type": type_name(DANetSpec), "branches": "channel", "channel_logits": "energy"},
    ],
}
BLOCKS.add(Kind.of(DANetSpec, _plan, example=_EXAMPLE))
