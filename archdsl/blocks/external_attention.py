"""External attention (Guo et al. 2021, "Beyond Self-attention: External Attention using Two Linear Layers for
Visual Tasks", arXiv:2105.02358; ``archdsl.nn.external_attention.ExternalAttention``): two learned memories of
S rows, double normalisation, in the residual form of the authors' head; keeps the channels and the map size."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["ExternalAttentionSpec"]


class ExternalAttentionSpec(BlockSpecBase):
    """``ReLU(x + BN(W_out Norm(F M_k^T) M_v))`` with ``F = W_in x``; keeps the channels and the map size."""

    type: Literal["external_attention"]
    memory: int = Field(64, ge=1, le=4096)
    """Rows S of the memories M_k and M_v (the paper: 64)."""
    heads: int = Field(1, ge=1, le=64)
    """Heads (paper eq. 6-7): the channels are split into this many groups that share the memories (each
    S x C / heads); 1 is the single-head block of the paper's segmentation head. Must divide C."""
    relu: bool = True
    """Apply a ReLU after the residual sum, as the authors' code does."""


def _plan(spec: ExternalAttentionSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    require(c % spec.heads == 0, ctx.path + ".heads", f"heads={spec.heads} must divide the block's channels {c}")
    d, n = c // spec.heads, h * w
    total = (
        cost.conv(c, c, 1, (h, w), bias=True)  # W_in
        + cost.linear(d, spec.memory, n * spec.heads, bias=False)  # M_k
        + cost.linear(spec.memory, d, n * spec.heads, bias=False)  # M_v
        + cost.conv(c, c, 1, (h, w))  # W_out
        + cost.batchnorm(c)
    )
    kwargs = {"channels": c, "memory": spec.memory, "heads": spec.heads, "relu": spec.relu}
    target = "archdsl.nn.external_attention.ExternalAttention"
    return make_node(ctx, "block", spec.type, ctx.in_shape, target, kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(ExternalAttentionSpec), "memory": 16, "heads": 2},
    ],
}
BLOCKS.add(Kind.of(ExternalAttentionSpec, _plan, example=_EXAMPLE))
