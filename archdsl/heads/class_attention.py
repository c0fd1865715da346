"""Class-attention head (Touvron et al. 2021, "Going deeper with Image Transformers" (CaiT), arXiv:2103.17239,
as used by VOLO, arXiv:2106.13112; ``archdsl.nn.class_attention.ClassAttentionHead``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import HEADS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import mlp_hidden, require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import SpecModel

__all__ = ["ClassAttentionSpec"]


class ClassAttentionSpec(SpecModel):
    """Class token + class-attention blocks + LayerNorm + linear head (+ VOLO's auxiliary token head)."""

    type: Literal["class_attention"]
    num_classes: int = Field(gt=0)
    """Number of classes."""
    num_heads: int = Field(gt=0)
    """Attention heads of the class-attention blocks (must divide the channels)."""
    mlp_ratio: float = Field(4.0, gt=0.0, le=16.0)
    """MLP hidden width / channels of the class-attention blocks."""
    depth: int = Field(2, ge=1, le=8)
    """Number of class-attention blocks."""
    aux_head: bool = True
    """Add ``0.5 * max over tokens`` of a per-token linear head to the output (VOLO)."""


def _plan(spec: ClassAttentionSpec, ctx: Ctx) -> Node:
    require(
        len(ctx.in_shape) == 3,
        ctx.path,
        f"a class_attention head needs a (C, H, W) feature map, got shape {ctx.in_shape}",
    )
    c, h, w = ctx.in_shape
    require(
        c % spec.num_heads == 0,
        ctx.path + ".num_heads",
        f"num_heads={spec.num_heads} must divide the feature channels {c}",
    )
    hidden = mlp_hidden(c, spec.mlp_ratio)
    require(hidden >= 1, ctx.path + ".mlp_ratio", f"mlp_ratio={spec.mlp_ratio} gives an empty MLP at {c} channels")
    kwargs = {
        "dim": c,
        "num_classes": spec.num_classes,
        "num_heads": spec.num_heads,
        "mlp_hidden": hidden,
        "depth": spec.depth,
        "aux_head": spec.aux_head,
    }
    n, d = h * w, c // spec.num_heads
    block = (
        cost.layernorm(c)
        + cost.linear(c, c, 1, bias=False)  # q from the class token
        + cost.linear(c, 2 * c, n + 1, bias=False)  # k, v from all tokens
        + cost.matmul(1, d, n + 1, batch=spec.num_heads) * 2  # q k^T and attn v
        + cost.linear(c, c, 1)  # proj
        + cost.layernorm(c)
        + cost.mlp(c, hidden, 1)
    )
    total = cost.param(1, 1, c) + block * spec.depth + cost.layernorm(c) + cost.linear(c, spec.num_classes, 1)
    if spec.aux_head:
        total = total + cost.linear(c, spec.num_classes, n)
    return make_node(
        ctx,
        "head",
        spec.type,
        (spec.num_classes,),
        "archdsl.nn.class_attention.ClassAttentionHead",
        kwargs,
        total,
    )


_EXAMPLE = {"type": type_name(ClassAttentionSpec), "num_classes": 10, "num_heads": 4, "mlp_ratio": 2.0}
HEADS.add(Kind.of(ClassAttentionSpec, _plan, example=_EXAMPLE))
