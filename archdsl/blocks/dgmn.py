"""Dynamic graph message passing (Zhang et al. 2020, arXiv:1908.06955; ``archdsl.nn.dgmn``): a residual
context block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require_context_block, require_divisible
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["DGMNSpec"]


class DGMNSpec(BlockSpecBase):
    """``x + BN(W sum_k softmax_k(a_ik) w_ik * x(p_ik))`` over K neighbours p_ik at learned offsets; keeps C, map."""

    type: Literal["dgmn"]
    kernel_size: OddKernel = 3
    """Side k of the base sampling grid: K = k*k sampled neighbours per node (the paper: 3x3)."""
    dilation: int = Field(1, ge=1, le=64)
    """Spacing of the base grid in pixels (the paper samples several sets at different dilations; here one)."""
    offset_kernel: OddKernel = 3
    """Side of the conv that predicts the 2K sampling offsets of each node from its features."""
    channels_per_group: int = Field(1, ge=1, le=1024)
    """Channels that share one dynamic filter weight per neighbour (1: channel-wise filters, the paper)."""
    zero_init: bool = True
    """Start the output BN's scale at zero, so the block starts as the identity."""


def _plan(spec: DGMNSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    m = spec.channels_per_group
    require_divisible(c, m, ctx.path + ".channels_per_group", "the block's channels", "channels_per_group")
    groups, kk, hw = c // m, spec.kernel_size**2, (h, w)
    total = (
        cost.conv(c, 2 * kk, spec.offset_kernel, hw, bias=True)  # offsets (bilinear sampling is not counted)
        + cost.conv(c, groups * kk, 1, hw, bias=True)  # dynamic filters
        + cost.conv(c, kk, 1, hw, bias=True)  # affinity logits
        + cost.matmul(1, kk, m, batch=h * w * groups)  # messages: sum over the K sampled nodes
        + cost.conv(c, c, 1, hw)
        + cost.batchnorm(c)
    )
    kwargs = {
        "channels": c,
        "kernel_size": spec.kernel_size,
        "dilation": spec.dilation,
        "offset_kernel": spec.offset_kernel,
        "group_channels": m,
        "zero_init": spec.zero_init,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.dgmn.DynamicGraphMessagePassing", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(DGMNSpec), "dilation": 2, "channels_per_group": 4, "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(DGMNSpec, _plan, example=_EXAMPLE))
