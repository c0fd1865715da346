"""Bottleneck Transformers for Visual Recognition (Srinivas et al. 2021, arXiv:2101.11605): the
multi-head self-attention that replaces the 3x3 conv in BoTNet's last stage
(``archdsl.nn.global_attention.GlobalAttention``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import MIXERS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.layout import declare_layout
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import SpecModel

__all__ = ["GlobalAttentionSpec"]


class GlobalAttentionSpec(SpecModel):
    """All-to-all self-attention with 2-D relative position logits; stride 2 average-pools afterwards."""

    type: Literal["global_attention"]
    num_heads: int = Field(4, ge=1)
    """Attention heads; must divide the bottleneck width w."""


def _plan(spec: GlobalAttentionSpec, ctx: Ctx) -> Node:
    w, hh, ww = ctx.in_shape
    s, n = ctx.stride, spec.num_heads
    require(w % n == 0, ctx.path + ".num_heads", f"num_heads={n} must divide the bottleneck width w={w}")
    require(s in (1, 2), ctx.path, f"global attention applies stride 1 or 2, the stage asks for {s}")
    require(
        hh % s == 0 and ww % s == 0, ctx.path, f"feature map {hh}x{ww} is not divisible by the stride {s}{ctx.where()}"
    )
    kwargs = {"channels": w, "height": hh, "width": ww, "num_heads": n, "stride": s}
    d, tokens = w // n, hh * ww
    c = cost.conv(w, 3 * w, 1, (hh, ww)) + cost.relpos(d, (hh, ww), n * tokens, (hh, ww))
    c = c + cost.matmul(tokens, d, tokens, n) * 2
    return make_node(
        ctx,
        "mixer",
        spec.type,
        (w, hh // s, ww // s),
        "archdsl.nn.global_attention.GlobalAttention",
        kwargs,
        c,
    )


_EXAMPLE = {"type": type_name(GlobalAttentionSpec), "num_heads": 2}
MIXERS.add(Kind.of(GlobalAttentionSpec, _plan, example=_EXAMPLE, layout="nchw"))
# NCHW for the CPU path, which reshapes the NCHW memory into blocks and heads; on CUDA the fused path copies its
# operands into the kernel's layout from NCHW and channels-last maps alike (archdsl.nn.relpos)
declare_layout("mixer", type_name(GlobalAttentionSpec), "any", device="cuda")
