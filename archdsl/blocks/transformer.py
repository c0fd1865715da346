"""Pre-LN transformer block (Vaswani et al. 2017, arXiv:1706.03762; the pre-norm ViT form of Dosovitskiy
et al. 2020, arXiv:2010.11929, as in VOLO's second stage; ``archdsl.nn.transformer.TransformerBlock``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import mlp_hidden, require_token_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["TransformerSpec"]


class TransformerSpec(BlockSpecBase):
    """Pre-LN multi-head self-attention + MLP, each with a residual; keeps the channels and the map size."""

    type: Literal["transformer"]
    num_heads: int = Field(gt=0)
    """Attention heads (must divide the channels)."""
    mlp_ratio: float = Field(4.0, gt=0.0, le=16.0)
    """MLP hidden width / channels."""
    qkv_bias: bool = False
    """Bias on the q, k, v projection."""


def _plan(spec: TransformerSpec, ctx: Ctx) -> Node:
    require_token_block(ctx, spec.type, spec.num_heads, spec.mlp_ratio)
    c, h, w = ctx.in_shape
    hidden = mlp_hidden(c, spec.mlp_ratio)
    kwargs = {
        "dim": c,
        "num_heads": spec.num_heads,
        "mlp_hidden": hidden,
        "qkv_bias": spec.qkv_bias,
        "drop_path": ctx.drop_path,
    }
    n, d = h * w, c // spec.num_heads
    attn = (
        cost.linear(c, 3 * c, n, bias=spec.qkv_bias)
        + cost.matmul(n, d, n, batch=spec.num_heads) * 2  # q k^T and attn v
        + cost.linear(c, c, n)
    )
    total = cost.layernorm(c) * 2 + attn + cost.mlp(c, hidden, n)
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.transformer.TransformerBlock", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "transition": {"type": "patch_merge"},
    "pos_embed": True,
    "blocks": [{"type": type_name(TransformerSpec), "repeat": 2, "num_heads": 4, "mlp_ratio": 2.0}],
}
BLOCKS.add(Kind.of(TransformerSpec, _plan, example=_EXAMPLE))
