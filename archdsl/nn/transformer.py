"""Pre-LN transformer block (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762; the pre-norm
ViT form of Dosovitskiy et al. 2020, arXiv:2010.11929, as used by VOLO's second stage, arXiv:2106.13112).

``x = x + MHSA(LN x); x = x + MLP(LN x)`` over the H*W tokens of a (B, C, H, W) map. The qkv projection has
no bias by default (VOLO), the output projection has one; attention is
``torch.nn.functional.scaled_dot_product_attention``. Position information comes from the stage's
``pos_embed: true`` (added before the first block), not from the block. No deviation from the papers;
weights use PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.drop_path import DropPath
from archdsl.nn.mlp import Mlp

__all__ = ["MultiHeadSelfAttention", "TransformerBlock"]


class MultiHeadSelfAttention(nn.Module):
    """Global multi-head self-attention over (B, N, C) tokens."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
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
        qkv_bias: bool,
        drop_path: float,
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
