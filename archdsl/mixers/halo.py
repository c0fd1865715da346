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

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.layers.relpos import RelativePosition2d, relpos_cost
from archdsl.plan.cost import conv, matmul
from archdsl.plan.kind import MIXERS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["HaloAttention", "HaloMixerSpec"]


class HaloMixerSpec(SpecModel):
    """Blocked local self-attention with halos; stride 2 subsamples the queries."""

    type: Literal["halo"]
    block_size: int = Field(ge=1, le=64)
    """b: side of the non-overlapping query blocks; must divide the feature map."""
    halo_size: int = Field(ge=0, le=32)
    """h: extra pixels on every side of a block's key/value window ((b+2h)^2 keys)."""
    num_heads: int = Field(8, ge=1)
    """Attention heads; must divide w and r_v*w."""
    value_ratio: float = Field(1.0, gt=0.0, le=16.0)
    """r_v: value (and output) width is r_v*w, an integer."""


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
        num_heads: int = 8,
        stride: int = 1,
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


def _value_channels(spec: HaloMixerSpec, ctx: Ctx) -> int:
    w = ctx.in_shape[0]
    vw = spec.value_ratio * w
    require(
        abs(vw - round(vw)) < 1e-9,
        ctx.path + ".value_ratio",
        f"value width value_ratio*w must be an integer, got {spec.value_ratio}*{w}={vw:g}",
    )
    return round(vw)


def _plan(spec: HaloMixerSpec, ctx: Ctx) -> Planned:
    w, hh, ww = ctx.in_shape
    s, b, h, n = ctx.stride, spec.block_size, spec.halo_size, spec.num_heads
    require(s in (1, 2), ctx.path, f"halo attention applies stride 1 or 2, the stage asks for {s}")
    require(
        b % s == 0,
        ctx.path + ".block_size",
        f"block_size={b} must be divisible by the stride {s} (queries are subsampled per block)",
    )
    require(
        hh % b == 0 and ww % b == 0,
        ctx.path,
        f"feature map {hh}x{ww} is not divisible by block_size={b}{ctx.where()}",
    )
    vw = _value_channels(spec, ctx)
    require(w % n == 0, ctx.path + ".num_heads", f"num_heads={n} must divide the bottleneck width w={w}")
    require(vw % n == 0, ctx.path + ".num_heads", f"num_heads={n} must divide the value width r_v*w={vw}")
    ho, wo = hh // s, ww // s
    dq, dv = w // n, vw // n
    blocks = (hh // b) * (ww // b)
    win = b + 2 * h
    nq = (b // s) ** 2
    cost = conv(w, w, 1, (ho, wo)) + conv(w, w + vw, 1, (hh, ww))
    cost = cost + relpos_cost(dq, (win, win), n * blocks * nq, (win, win))
    cost = cost + matmul(nq, dq, win * win, n * blocks) + matmul(nq, win * win, dv, n * blocks)
    return Planned((vw, ho, wo), cost)


def _build(spec: HaloMixerSpec, ctx: Ctx) -> nn.Module:
    w, hh, ww = ctx.in_shape
    return HaloAttention(
        w, _value_channels(spec, ctx), hh, ww, spec.block_size, spec.halo_size, spec.num_heads, ctx.stride
    )


_EXAMPLE = {"type": "halo", "block_size": 4, "halo_size": 1, "num_heads": 2, "value_ratio": 2.0}
MIXERS.register("halo", Kind("halo", HaloMixerSpec, _plan, _build, example=_EXAMPLE))
