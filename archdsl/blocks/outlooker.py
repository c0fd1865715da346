"""Outlooker block (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition", arXiv:2106.13112;
``archdsl.nn.outlook.Outlooker``): ``x = x + OA(LN x); x = x + MLP(LN x)``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import mlp_hidden, require, require_token_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["OutlookerSpec", "outlook_windows"]


class OutlookerSpec(BlockSpecBase):
    """VOLO outlooker: outlook attention + MLP, each pre-LN with a residual; keeps channels and map size."""

    type: Literal["outlooker"]
    num_heads: int = Field(gt=0)
    """Attention heads (must divide the channels)."""
    kernel_size: int = Field(3, ge=1, le=7)
    """Side k of each outlook window (k x k positions)."""
    padding: int = Field(1, ge=0, le=3)
    """Zero padding of the window unfold; (kernel_size - 1) / 2 centres the windows."""
    attn_stride: int = Field(2, ge=1, le=4)
    """Stride between windows = pooling of the map the attention weights are predicted from."""
    mlp_ratio: float = Field(3.0, gt=0.0, le=16.0)
    """MLP hidden width / channels."""
    qkv_bias: bool = False
    """Bias on the value projection."""


def outlook_windows(size: int, kernel_size: int, padding: int, stride: int) -> int:
    """Windows along one side of the unfold (``F.unfold`` arithmetic)."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _plan(spec: OutlookerSpec, ctx: Ctx) -> Node:
    require_token_block(ctx, spec.type, spec.num_heads, spec.mlp_ratio)
    c, h, w = ctx.in_shape
    k, p, s = spec.kernel_size, spec.padding, spec.attn_stride
    need = (-(-h // s), -(-w // s))
    got = (outlook_windows(h, k, p, s), outlook_windows(w, k, p, s))
    require(
        got == need,
        ctx.path + ".padding",
        f"kernel_size={k}, padding={p}, attn_stride={s} unfold the {h}x{w} map into {got[0]}x{got[1]} "
        f"windows but the pooled attention map has {need[0]}x{need[1]} (ceil({h}/{s}) x ceil({w}/{s})); "
        f"use padding=(kernel_size-1)/2 with an odd kernel_size{ctx.where()}",
    )
    hidden = mlp_hidden(c, spec.mlp_ratio)
    kwargs = {
        "dim": c,
        "num_heads": spec.num_heads,
        "mlp_hidden": hidden,
        "kernel_size": k,
        "padding": p,
        "stride": s,
        "qkv_bias": spec.qkv_bias,
        "drop_path": ctx.drop_path,
    }
    n, windows, k2 = h * w, need[0] * need[1], k * k
    attn = (
        cost.linear(c, c, n, bias=spec.qkv_bias)  # v
        + cost.linear(c, spec.num_heads * k2 * k2, windows)  # attention logits from pooled tokens
        + cost.matmul(k2, k2, c // spec.num_heads, batch=spec.num_heads * windows)  # attn @ v per window
        + cost.linear(c, c, n)  # proj
    )
    total = cost.layernorm(c) * 2 + attn + cost.mlp(c, hidden, n)
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.outlook.Outlooker", kwargs, total)


_EXAMPLE = {
    "channels": 16,
    "stride": 1,
    "blocks": [{"type": type_name(OutlookerSpec), "repeat": 2, "num_heads": 2, "attn_stride": 3, "mlp_ratio": 2.0}],
}
BLOCKS.add(Kind.of(OutlookerSpec, _plan, example=_EXAMPLE))
