"""Pre-LN transformer block (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762; the pre-norm
ViT form of Dosovitskiy et al. 2020, arXiv:2010.11929, as used by VOLO's second stage, arXiv:2106.13112).

``x = x + MHSA(LN x); x = x + MLP(LN x)`` over the H*W tokens of a (B, C, H, W) map. The qkv projection has
no bias by default (VOLO), the output projection has one; attention is
``torch.nn.functional.scaled_dot_product_attention``. Position information comes from the stage's
``pos_embed: true`` (added before the first block), not from the block. No deviation from the papers;
weights use PyTorch's default initialisation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.layers.drop_path import DropPath
from archdsl.layers.mlp import Mlp, mlp_cost
from archdsl.plan.cost import Cost, layernorm, linear, matmul
from archdsl.plan.kind import BLOCKS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import BlockSpecBase

__all__ = [
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TransformerSpec",
    "mlp_hidden",
    "require_token_block",
]


class TransformerSpec(BlockSpecBase):
    """Pre-LN multi-head self-attention + MLP, each with a residual; keeps the channels and the map size."""

    type: Literal["transformer"]
    num_heads: int = Field(gt=0)
    """Attention heads (must divide the channels)."""
    mlp_ratio: float = Field(4.0, gt=0.0, le=16.0)
    """MLP hidden width / channels."""
    qkv_bias: bool = False
    """Bias on the q, k, v projection."""


class MultiHeadSelfAttention(nn.Module):
    """Global multi-head self-attention over (B, N, C) tokens."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)  # (B, N, 3, heads, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, heads, N, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        y = y.transpose(1, 2).reshape(b, n, c)  # (B, N, C)
        return self.proj(y)


class TransformerBlock(nn.Module):
    """``x + MHSA(LN x)`` then ``x + MLP(LN x)``; (B, C, H, W) in and out."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, C, H, W) -> (B, N, C)
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2)  # (B, N, C) -> (B, C, H, W)


def mlp_hidden(channels: int, mlp_ratio: float) -> int:
    """Hidden width of a block's MLP: ``int(channels * mlp_ratio)``."""
    return int(channels * mlp_ratio)


def require_token_block(ctx: Ctx, name: str, num_heads: int, mlp_ratio: float) -> None:
    """Rules shared by token blocks: same channels in and out, no stride, heads divide C, MLP width >= 1."""
    c = ctx.in_shape[0]
    require(
        ctx.out_channels in (0, c),
        ctx.path,
        f"a {name} block keeps its {c} input channels but the stage declares {ctx.out_channels}; "
        "add a transition to the stage (e.g. `transition: {type: patch_merge}`) to change channels",
    )
    require(
        ctx.stride == 1,
        ctx.path,
        f"a {name} block cannot apply the stage's stride {ctx.stride}; "
        "add a transition to the stage (e.g. `transition: {type: patch_merge}`) to down-sample",
    )
    require(
        c % num_heads == 0,
        ctx.path + ".num_heads",
        f"num_heads={num_heads} must divide the block's channels {c}",
    )
    require(
        mlp_hidden(c, mlp_ratio) >= 1,
        ctx.path + ".mlp_ratio",
        f"mlp_ratio={mlp_ratio} gives an empty MLP at {c} channels",
    )


def _plan(spec: TransformerSpec, ctx: Ctx) -> Planned:
    require_token_block(ctx, "transformer", spec.num_heads, spec.mlp_ratio)
    c, h, w = ctx.in_shape
    n = h * w
    d = c // spec.num_heads
    attn = (
        linear(c, 3 * c, n, bias=spec.qkv_bias)
        + matmul(n, d, n, batch=spec.num_heads) * 2  # q k^T and attn v
        + linear(c, c, n)
    )
    cost: Cost = layernorm(c) * 2 + attn + mlp_cost(c, mlp_hidden(c, spec.mlp_ratio), n)
    return Planned(ctx.in_shape, cost)


def _build(spec: TransformerSpec, ctx: Ctx) -> nn.Module:
    c = ctx.in_shape[0]
    return TransformerBlock(c, spec.num_heads, mlp_hidden(c, spec.mlp_ratio), spec.qkv_bias, ctx.drop_path)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "transition": {"type": "patch_merge"},
    "pos_embed": True,
    "blocks": [{"type": "transformer", "repeat": 2, "num_heads": 4, "mlp_ratio": 2.0}],
}
BLOCKS.register("transformer", Kind("transformer", TransformerSpec, _plan, _build, example=_EXAMPLE))
