"""APCNet block (He et al. 2019, CVPR 2019; ``archdsl.nn.apcnet.AdaptivePyramidContext``): adaptive context
modules at pyramid scales, fused with the input back to its channels; keeps the map, placed between the conv
blocks of a stage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["APCNetSpec"]


class APCNetSpec(BlockSpecBase):
    """``ReLU(BN(conv_k([X; ACM_s(X) for s in scales])))``: per-pixel affinities to the s x s pooled regions of
    every scale; keeps the channels and the map size (no residual around it, as in the paper)."""

    type: Literal["apcnet"]
    scales: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=lambda: [1, 2, 3, 6], min_length=1, max_length=8
    )
    """Pyramid scales s: each ACM pools the map to s x s regions (the paper: 1, 2, 3, 6); at most the map's sides."""
    reduction: int = Field(4, ge=1, le=1024)
    """Each ACM works on C / reduction channels (the paper: 2048 -> 512, 4)."""
    fusion_kernel: OddKernel = 3
    """Kernel of the conv that fuses the input and the ACM outputs back to C (mmsegmentation's head: 3)."""


def _plan(spec: APCNetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    big = max(spec.scales)
    require(
        big <= min(h, w),
        ctx.path + ".scales",
        f"scale {big} pools a {h}x{w} feature map{ctx.where()} to more regions than it has rows or columns; "
        f"use scales of at most {min(h, w)}",
    )
    hw, n = (h, w), h * w
    total = cost.Cost()
    for s in spec.scales:
        total = total + (
            cost.conv_bn(c, inner, 1, hw)  # reduced x
            + cost.conv_bn(c, inner, 1, (s, s))  # pooled regions y
            + cost.conv_bn(inner, inner, 1, (1, 1))  # global information g
            + cost.conv(inner, s * s, 1, hw, bias=True)  # affinity
            + cost.matmul(inner, s * s, n)  # z = y alpha
            + cost.conv_bn(inner, inner, 1, hw) * 2  # before and after the residual
        )
    total = total + cost.conv_bn(c + len(spec.scales) * inner, c, spec.fusion_kernel, hw)
    kwargs = {"channels": c, "inner": inner, "scales": list(spec.scales), "fusion_kernel": spec.fusion_kernel}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.apcnet.AdaptivePyramidContext", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(APCNetSpec), "scales": [1, 2, 3, 6]}],
}
BLOCKS.add(Kind.of(APCNetSpec, _plan, example=_EXAMPLE))
