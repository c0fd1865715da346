"""Scaling Local Self-Attention for Parameter Efficient Visual Backbones (Vaswani et al. 2021,
arXiv:2103.12731): blocked local self-attention with halos, the spatial mixer of HaloNet.

The map is cut into non-overlapping b x b query blocks; every block attends to the (b+2h) x (b+2h) window
around it, taken from the keys/values zero-padded by h. Padded key positions get zero attention weight
(additive ``-inf``). Logits per head: ``(q·k + q·R_h[k_y - q_y] + q·R_w[k_x - q_x]) / sqrt(d)`` with the
factorised relative-position tables of shape (2(b+2h)-1, d) shared by all heads; the scale multiplies the
query once, so it applies to the content and the position logits alike. Queries and keys have width w,
values (and the output) width r_v*w; q/k/v are 1x1 convs without bias and there is no output projection
(the bottleneck's last 1x1 conv is it). Stride 2 subsamples the queries (the top-left pixel of every 2x2
cell of each block, (b/2)^2 queries per block, by a strided 1x1 query conv) while keys/values still come
from the full window; relative offsets are measured in full-resolution pixels.
Deviations from the paper: none intended; k and v are one fused 1x1 conv (same parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.relpos import RelativePosition2d

__all__ = ["HaloAttention"]


class HaloAttention(nn.Module):
    """Halo attention on a fixed (height, width) map: (B, w, H, W) -> (B, r_v*w, H/s, W/s)."""

    def __init__(
        self,
        channels: int,
        value_channels: int,
        height: int,
        width: int,
        block_size: int,
        halo_size: int,
        num_heads: int,
        stride: int,
    ) -> None:
        super().__init__()
        b, h, s = block_size, halo_size, stride
        self.block, self.halo, self.stride, self.heads = b, h, s, num_heads
        self.window = b + 2 * h
        self.qk_dim = channels // num_heads
        self.v_dim = value_channels // num_heads
        self.grid = (height // b, width // b)
        self.scale = self.qk_dim**-0.5
        self.q = nn.Conv2d(channels, channels, 1, s, bias=False)
        self.kv = nn.Conv2d(channels, channels + value_channels, 1, bias=False)
        window_pos = range(self.window)
        query_pos = range(h, h + b, s)  # full-resolution query rows/cols inside the window
        self.relpos = RelativePosition2d(
            self.qk_dim, (self.window, self.window), query_pos, query_pos, window_pos, window_pos
        )
        # 0 for keys inside the map, -inf for the zero padding: (num_blocks, 1, window^2)
        gh, gw = self.grid
        rows = torch.arange(gh).unsqueeze(1) * b - h + torch.arange(self.window)  # (gh, window)
        cols = torch.arange(gw).unsqueeze(1) * b - h + torch.arange(self.window)  # (gw, window)
        inside_r = (rows >= 0) & (rows < height)
        inside_c = (cols >= 0) & (cols < width)
        inside = inside_r[:, None, :, None] & inside_c[None, :, None, :]  # (gh, gw, window, window)
        mask = torch.zeros(inside.shape).masked_fill(~inside, float("-inf"))
        self.register_buffer("mask", mask.reshape(gh * gw, 1, self.window**2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz = x.shape[0]
        n, dq, dv = self.heads, self.qk_dim, self.v_dim
        gh, gw = self.grid
        bq = self.block // self.stride  # query block side
        win = self.window
        q = self.q(x) * self.scale  # (B, n*dq, gh*bq, gw*bq)
        q = q.reshape(bsz, n, dq, gh, bq, gw, bq).permute(0, 1, 3, 5, 4, 6, 2)  # (B, n, gh, gw, bq, bq, dq)
        q = q.reshape(bsz, n, gh * gw, bq, bq, dq)  # (B, n, nb, bq, bq, dq)
        bias = self.relpos(q) + self.mask  # (B, n, nb, bq*bq, win*win)
        kv = F.pad(self.kv(x), (self.halo,) * 4)  # (B, n*(dq+dv), H+2h, W+2h)
        kv = kv.unfold(2, win, self.block).unfold(3, win, self.block)  # (B, n*(dq+dv), gh, gw, win, win)
        kv = kv.reshape(bsz, -1, gh * gw, win * win).transpose(1, 2)  # (B, nb, n*(dq+dv), win^2)
        k, v = kv.split([n * dq, n * dv], dim=2)
        k = k.reshape(bsz, gh * gw, n, dq, win * win).permute(0, 2, 1, 4, 3)  # (B, n, nb, win^2, dq)
        v = v.reshape(bsz, gh * gw, n, dv, win * win).permute(0, 2, 1, 4, 3)  # (B, n, nb, win^2, dv)
        out = F.scaled_dot_product_attention(
            q.reshape(bsz, n * gh * gw, bq * bq, dq),  # (B, n*nb, bq^2, dq)
            k.reshape(bsz, n * gh * gw, win * win, dq),  # (B, n*nb, win^2, dq)
            v.reshape(bsz, n * gh * gw, win * win, dv),  # (B, n*nb, win^2, dv)
            attn_mask=bias.reshape(bsz, n * gh * gw, bq * bq, win * win),
            scale=1.0,
        )  # (B, n*nb, bq^2, dv)
        out = out.reshape(bsz, n, gh, gw, bq, bq, dv).permute(0, 1, 6, 2, 4, 3, 5)  # (B, n, dv, gh, bq, gw, bq)
        return out.reshape(bsz, n * dv, gh * bq, gw * bq)  # (B, r_v*w, H/s, W/s)

    def extra_repr(self) -> str:
        return f"block={self.block}, halo={self.halo}, heads={self.heads}, stride={self.stride}"
