"""Class-attention head (Touvron et al. 2021, "Going deeper with Image Transformers" (CaiT), arXiv:2103.17239,
as used by Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition", arXiv:2106.13112).

A learned class token passes through ``depth`` class-attention blocks, in which only the class token
queries the (LayerNormed) ``[cls; tokens]``: ``cls += proj(attn(q(cls), kv([cls; tokens])))`` then
``cls += MLP(LN cls)``; the patch tokens are not updated. A final LayerNorm covers all tokens, a linear head
reads the class token and, with ``aux_head``, an auxiliary linear head reads every patch token.
The output is VOLO's inference output ``head(cls) + 0.5 * max_over_tokens(aux_head(tokens))``.
Deviation: the token-labelling training targets (per-token dense scores and MixToken) are not produced;
the aux head is trained only through that inference output. Weights use PyTorch's default
initialisation, the class token a truncated normal (std 0.02).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.mlp import Mlp

__all__ = ["ClassAttention", "ClassAttentionBlock", "ClassAttentionHead"]


class ClassAttention(nn.Module):
    """The class token (B, 1, C) attends to all tokens (B, 1+N, C); returns (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x[:, :1]).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, 1, d)
        kv = self.kv(x).reshape(b, n, 2, self.num_heads, self.head_dim)  # (B, 1+N, 2, heads, d)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, heads, 1+N, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, 1, d)
        return self.proj(y.transpose(1, 2).reshape(b, 1, c))  # (B, 1, C)


class ClassAttentionBlock(nn.Module):
    """On x = [cls; tokens] (B, 1+N, C): ``cls += CA(LN x)``; ``cls += MLP(LN cls)``; tokens unchanged."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.attn(self.norm1(x))  # (B, 1, C)
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)  # (B, 1+N, C)


class ClassAttentionHead(nn.Module):
    """(B, C, H, W) -> (B, num_classes)."""

    NO_WEIGHT_DECAY = ("cls_token",)
    """The class token is an embedding: trained without weight decay."""

    def __init__(
        self,
        dim: int,
        num_classes: int,
        num_heads: int,
        mlp_hidden: int,
        depth: int,
        aux_head: bool,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(ClassAttentionBlock(dim, num_heads, mlp_hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.use_aux = aux_head
        self.aux_head = nn.Linear(dim, num_classes) if aux_head else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, C, H, W) -> (B, N, C)
        z = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)  # (B, 1+N, C)
        for block in self.blocks:
            z = block(z)
        z = self.norm(z)
        out = self.head(z[:, 0])  # (B, classes)
        if self.use_aux:
            out = out + 0.5 * self.aux_head(z[:, 1:]).amax(dim=1)  # (B, N, classes) -> (B, classes)
        return out
