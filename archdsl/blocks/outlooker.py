"""Outlooker block (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition", arXiv:2106.13112).

``x = x + OA(LN x); x = x + MLP(LN x)`` on a (B, C, H, W) map, computed channels-last inside.
Outlook attention (paper eq. 2-5): values ``v = Linear(C, C)``; the map is average-pooled (attn_stride x
attn_stride, ceil mode) and ``Linear(C, heads*k^4)`` turns each pooled token into, per head, a k²xk²
attention (scaled by head_dim^-0.5, softmax over the source positions) that mixes the k² value vectors of
the k x k window centred there (zero-padded at the borders); the windows are folded back onto the map,
overlapping contributions summed, and projected by ``Linear(C, C)``.
No deviation from the paper; weights use PyTorch's default initialisation.

Unfold and fold are a gather and an ``index_add`` over precomputed window indices of the padded map:
the same arithmetic as ``F.unfold``/``F.fold``, but torch 2.13's inductor CPU backend corrupts memory
when it fuses ``F.fold`` (stride 2) with the preceding ops, and the index form compiles cleanly.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.blocks.transformer import mlp_hidden, require_token_block
from archdsl.layers.drop_path import DropPath
from archdsl.layers.mlp import Mlp, mlp_cost
from archdsl.plan.cost import Cost, layernorm, linear, matmul
from archdsl.plan.kind import BLOCKS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import BlockSpecBase

__all__ = ["OutlookAttention", "Outlooker", "OutlookerSpec", "outlook_windows"]


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


class OutlookAttention(nn.Module):
    """Outlook attention on channels-last (B, H, W, C) maps."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: int = 3,
        padding: int = 1,
        stride: int = 2,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.kernel_size = kernel_size
        self.padding = padding
        self.stride = stride
        self.scale = self.head_dim**-0.5
        k2 = kernel_size * kernel_size
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn = nn.Linear(dim, num_heads * k2 * k2)
        self.proj = nn.Linear(dim, dim)
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        k, p, s = self.kernel_size, self.padding, self.stride
        k2 = k * k
        index, hp, wp = window_index(h, w, k, p, s, x.device)  # (k², L) into the padded (Hp*Wp) map
        v = F.pad(self.v(x).permute(0, 3, 1, 2), (p, p, p, p))  # (B, C, Hp, Wp)
        v = v.flatten(2)[:, :, index]  # (B, C, k², L): every window's k² values, gathered once
        v = v.reshape(b, self.num_heads, self.head_dim, k2, -1).permute(0, 1, 4, 3, 2)  # (B, heads, L, k², d)
        a = self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H/s, W/s, C) (ceil)
        a = self.attn(a)  # (B, H/s, W/s, heads*k⁴)
        a = a.reshape(b, -1, self.num_heads, k2, k2).permute(0, 2, 1, 3, 4)  # (B, heads, L, k², k²)
        a = (a * self.scale).softmax(dim=-1)
        y = a @ v  # (B, heads, L, k², d)
        y = y.permute(0, 1, 4, 3, 2).reshape(b, c, -1)  # (B, C, k²*L) in the order of index.flatten()
        # fold: scatter-add every window back onto the padded map, overlaps summed, then crop the padding
        out = y.new_zeros(b, c, hp * wp).index_add(2, index.flatten(), y)  # (B, C, Hp*Wp)
        out = out.view(b, c, hp, wp)[:, :, p : p + h, p : p + w]  # (B, C, H, W)
        return self.proj(out.permute(0, 2, 3, 1))  # (B, H, W, C)


def window_index(h: int, w: int, k: int, p: int, s: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
    """Flat indices (k², L) of each k x k window (stride s) in the map zero-padded by p, as ``F.unfold``
    orders them: kernel offset (u, v) major, window (i, j) row-major. Returns (index, Hp, Wp)."""
    hp, wp = h + 2 * p, w + 2 * p
    nh, nw = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    off = torch.arange(k, device=device)
    rows = (torch.arange(nh, device=device) * s)[None, :] + off[:, None]  # (k, nh)
    cols = (torch.arange(nw, device=device) * s)[None, :] + off[:, None]  # (k, nw)
    index = rows[:, None, :, None] * wp + cols[None, :, None, :]  # (k, k, nh, nw)
    return index.reshape(k * k, nh * nw), hp, wp


class Outlooker(nn.Module):
    """``x + OA(LN x)`` then ``x + MLP(LN x)``; (B, C, H, W) in and out."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        kernel_size: int = 3,
        padding: int = 1,
        stride: int = 2,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = OutlookAttention(dim, num_heads, kernel_size, padding, stride, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def outlook_windows(size: int, kernel_size: int, padding: int, stride: int) -> int:
    """Windows along one side of the unfold (``F.unfold`` arithmetic)."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _plan(spec: OutlookerSpec, ctx: Ctx) -> Planned:
    require_token_block(ctx, "outlooker", spec.num_heads, spec.mlp_ratio)
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
    n, windows, k2 = h * w, need[0] * need[1], k * k
    attn = (
        linear(c, c, n, bias=spec.qkv_bias)  # v
        + linear(c, spec.num_heads * k2 * k2, windows)  # attention logits from pooled tokens
        + matmul(k2, k2, c // spec.num_heads, batch=spec.num_heads * windows)  # attn @ v per window
        + linear(c, c, n)  # proj
    )
    cost: Cost = layernorm(c) * 2 + attn + mlp_cost(c, mlp_hidden(c, spec.mlp_ratio), n)
    return Planned(ctx.in_shape, cost)


def _build(spec: OutlookerSpec, ctx: Ctx) -> nn.Module:
    c = ctx.in_shape[0]
    return Outlooker(
        c,
        spec.num_heads,
        mlp_hidden(c, spec.mlp_ratio),
        spec.kernel_size,
        spec.padding,
        spec.attn_stride,
        spec.qkv_bias,
        ctx.drop_path,
    )


_EXAMPLE = {
    "channels": 16,
    "stride": 1,
    "blocks": [{"type": "outlooker", "repeat": 2, "num_heads": 2, "attn_stride": 3, "mlp_ratio": 2.0}],
}
BLOCKS.register("outlooker", Kind("outlooker", OutlookerSpec, _plan, _build, example=_EXAMPLE))
