"""Outlooker block (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition", arXiv:2106.13112).

``x = x + OA(LN x); x = x + MLP(LN x)`` on a (B, C, H, W) map, computed channels-last inside.
Outlook attention (paper eq. 2-5): values ``v = Linear(C, C)``; the map is average-pooled (attn_stride x
attn_stride, ceil mode) and ``Linear(C, heads*k^4)`` turns each pooled token into, per head, a k²xk²
attention (scaled by head_dim^-0.5, softmax over the source positions) that mixes the k² value vectors of
the k x k window centred there (zero-padded at the borders); the windows are folded back onto the map,
overlapping contributions summed, and projected by ``Linear(C, C)``.
No deviation from the paper; weights use PyTorch's default initialisation.

Eager, the windows are k² strided copies of the channels-last map straight into the layout the k²xk²
product takes, and the fold is their adjoint (``windows`` and ``fold``): no NCHW im2col/col2im and no permute
copies around them, each the other's backward. Under ``torch.compile`` they are a gather and an
``index_add`` over precomputed window indices of the padded map, the same arithmetic: torch 2.13's
inductor CPU backend corrupts memory when it fuses ``F.fold`` (stride 2) with the preceding ops
(``benchmarks/fold_repro.py``), and the index form compiles cleanly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.drop_path import DropPath
from archdsl.nn.mlp import Mlp
from archdsl.nn.windows import fold, window_count, windows

__all__ = ["OutlookAttention", "Outlooker", "window_index"]


class OutlookAttention(nn.Module):
    """Outlook attention on channels-last (B, H, W, C) maps."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: int,
        padding: int,
        stride: int,
        qkv_bias: bool,
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
        h, w = x.shape[1:3]
        k, p, s, n = self.kernel_size, self.padding, self.stride, self.num_heads
        k2 = k * k
        a = self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H/s, W/s, C) (ceil)
        a = self.attn(a)  # (B, H/s, W/s, heads*k⁴)
        if torch.compiler.is_compiling():
            return self._compiled(x, a)
        v = windows(self.v(x), k, p, s, n)  # (B, nh, nw, heads, k², d), zero outside the map
        a = a.reshape(*v.shape[:4], k2, k2)  # (B, nh, nw, heads, k², k²)
        y = (a * self.scale).softmax(dim=-1) @ v  # (B, nh, nw, heads, k², d)
        return self.proj(fold(y, (h, w), k, p, s))  # (B, H, W, C)

    def _compiled(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The same arithmetic as a gather and an ``index_add`` over precomputed window indices, for
        inductor (torch 2.13's CPU backend corrupts memory when it fuses ``F.fold``)."""
        b, h, w, c = x.shape
        k, p, s = self.kernel_size, self.padding, self.stride
        k2 = k * k
        index, hp, wp = window_index(h, w, k, p, s, x.device)  # (k², L) into the padded (Hp*Wp) map
        v = F.pad(self.v(x).permute(0, 3, 1, 2), (p, p, p, p)).flatten(2)[:, :, index]  # (B, C, k², L)
        v = v.reshape(b, self.num_heads, self.head_dim, k2, -1).permute(0, 1, 4, 3, 2)  # (B, heads, L, k², d)
        a = a.reshape(b, -1, self.num_heads, k2, k2).permute(0, 2, 1, 3, 4)  # (B, heads, L, k², k²)
        y = ((a * self.scale).softmax(dim=-1) @ v).permute(0, 1, 4, 3, 2).reshape(b, c, -1)  # (B, C, k²*L)
        # fold: scatter-add every window back onto the padded map, overlaps summed, crop the padding
        out = y.new_zeros(b, c, hp * wp).index_add(2, index.flatten(), y)  # (B, C, Hp*Wp)
        out = out.view(b, c, hp, wp)[:, :, p : p + h, p : p + w]  # (B, C, H, W)
        return self.proj(out.permute(0, 2, 3, 1))  # (B, H, W, C)


def window_index(h: int, w: int, k: int, p: int, s: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
    """Flat indices (k², L) of each k x k window (stride s) in the map zero-padded by p, as ``F.unfold``
    orders them: kernel offset (u, v) major, window (i, j) row-major. Returns (index, Hp, Wp)."""
    hp, wp = h + 2 * p, w + 2 * p
    nh, nw = window_count(h, k, p, s), window_count(w, k, p, s)
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
        kernel_size: int,
        padding: int,
        stride: int,
        qkv_bias: bool,
        drop_path: float,
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
