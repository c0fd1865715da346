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

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.blocks.transformer import mlp_hidden
from archdsl.layers.mlp import Mlp, mlp_cost
from archdsl.plan.cost import Cost, layernorm, linear, matmul, param
from archdsl.plan.kind import HEADS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["ClassAttention", "ClassAttentionBlock", "ClassAttentionHead", "ClassAttentionSpec"]


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

    def __init__(
        self,
        dim: int,
        num_classes: int,
        num_heads: int,
        mlp_hidden: int,
        depth: int = 2,
        aux_head: bool = True,
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


def _plan(spec: ClassAttentionSpec, ctx: Ctx) -> Planned:
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
    n = h * w
    d = c // spec.num_heads
    block = (
        layernorm(c)
        + linear(c, c, 1, bias=False)  # q from the class token
        + linear(c, 2 * c, n + 1, bias=False)  # k, v from all tokens
        + matmul(1, d, n + 1, batch=spec.num_heads) * 2  # q k^T and attn v
        + linear(c, c, 1)  # proj
        + layernorm(c)
        + mlp_cost(c, hidden, 1)
    )
    cost: Cost = param(1, 1, c) + block * spec.depth + layernorm(c) + linear(c, spec.num_classes, 1)
    if spec.aux_head:
        cost = cost + linear(c, spec.num_classes, n)
    return Planned((spec.num_classes,), cost)


def _build(spec: ClassAttentionSpec, ctx: Ctx) -> nn.Module:
    c = ctx.in_shape[0]
    return ClassAttentionHead(
        c, spec.num_classes, spec.num_heads, mlp_hidden(c, spec.mlp_ratio), spec.depth, spec.aux_head
    )


_EXAMPLE = {"type": "class_attention", "num_classes": 10, "num_heads": 4, "mlp_ratio": 2.0}
HEADS.register("class_attention", Kind("class_attention", ClassAttentionSpec, _plan, _build, example=_EXAMPLE))
