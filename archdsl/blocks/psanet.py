"""PSANet block (Zhao et al. 2018, ECCV 2018; ``archdsl.nn.psanet.PointwiseSpatialAttention``): point-wise
spatial attention from over-completed masks, fused with the input; keeps the map, placed between the conv blocks
of a stage, and is tied to the map size it is planned at."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["MAX_MASK_CHANNELS", "PSANetSpec"]

MAX_MASK_CHANNELS = 16384
"""Most (2H-1)(2W-1) mask channels a PSANet block predicts per position: maps up to 64x64 (the paper's 60x60
maps need 14161); the mask conv and the N x N attention grow with the fourth power of the side."""


class PSANetSpec(BlockSpecBase):
    """``ReLU(BN(conv_k([X; project(collect(X); distribute(X))])))``; keeps the channels and the map size.

    Each position predicts a (2H-1) x (2W-1) mask, so the block is built for the H x W map it is planned at."""

    type: Literal["psanet"]
    mode: Literal["collect", "distribute", "bi"] = "bi"
    """The branches: collect (i gathers with its own mask), distribute (j spreads with its mask), or both."""
    reduction: int = Field(4, ge=1, le=1024)
    """Each branch works on C / reduction channels (the paper: 2048 -> 512, 4)."""
    fusion_kernel: OddKernel = 3
    """Kernel of the conv that fuses the input and the attention features back to C (the authors' code: 3)."""


def _plan(spec: PSANetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    masks = (2 * h - 1) * (2 * w - 1)
    require(
        masks <= MAX_MASK_CHANNELS,
        ctx.path,
        f"a psanet block predicts (2H-1)(2W-1)={masks} mask channels per position on its {h}x{w} feature map"
        f"{ctx.where()}, more than {MAX_MASK_CHANNELS}; place it where the map is at most 64x64",
    )
    hw, n = (h, w), h * w
    branches = 2 if spec.mode == "bi" else 1
    branch = (
        cost.conv_bn(c, inner, 1, hw)  # reduce
        + cost.conv_bn(inner, inner, 1, hw)  # adaption
        + cost.conv(inner, masks, 1, hw)  # over-completed masks
        + cost.matmul(inner, n, n)  # aggregation
    )
    total = branch * branches + cost.conv_bn(branches * inner, c, 1, hw)  # projection
    total = total + cost.conv_bn(2 * c, c, spec.fusion_kernel, hw)  # fusion with the input
    kwargs = {
        "channels": c,
        "inner": inner,
        "height": h,
        "width": w,
        "mode": spec.mode,
        "fusion_kernel": spec.fusion_kernel,
    }
    target = "archdsl.nn.psanet.PointwiseSpatialAttention"
    return make_node(ctx, "block", spec.type, ctx.in_shape, target, kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(PSANetSpec), "mode": "bi"}],
}
BLOCKS.add(Kind.of(PSANetSpec, _plan, example=_EXAMPLE))
