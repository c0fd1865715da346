"""Dynamic graph message passing (Zhang et al. 2020, "Dynamic Graph Message Passing Networks", arXiv:1908.06955).

One dynamic message-passing step over the N = H*W nodes of a (B, C, H, W) map, whose node features h_i are
the input's pixels:

- dynamic sampling: each node i samples K = k*k neighbours around a base grid of dilation d,
  ``p_ik = p_i + d * (dy_k, dx_k) + (ody_ik, odx_ik)`` with ``(dy_k, dx_k) in {-(k//2)..k//2}^2`` and the 2K
  offsets predicted from the node features by a conv (``offset_kernel``, with bias; channel 2k is the row
  offset of neighbour k, channel 2k + 1 its column offset). The conv starts at zero, so the sampling starts
  on the base grid. The features ``h(p_ik)`` are read by bilinear interpolation of the four pixels around
  ``p_ik``, pixels outside the map reading 0: ``torch.nn.functional.grid_sample`` (bilinear, zero padding,
  ``align_corners=False`` with pixel p at the normalised coordinate ``(2p + 1) / size - 1``, its centre);
- dynamic filters: position-specific weights ``w_ik`` predicted from the node feature h_i by a 1x1 conv (with
  bias) to G*K channels (channel g*K + k for neighbour k), one weight per group of ``group_channels``
  channels (1: a channel-wise filter, the paper's depth-wise dynamic filter), G = C / group_channels;
- dynamic affinities: ``alpha_ik = softmax_k(a_ik)`` over the K sampled nodes, the logits a_ik predicted from
  h_i by a 1x1 conv (with bias) to K channels;
- message aggregation ``m_i = sum_k alpha_ik w_ik * h(p_ik)`` (the filter weight of each channel's group);
- update: a 1x1 conv (no bias) and a BatchNorm on the messages, and the residual ``h_i + BN(W m_i)``; the
  BatchNorm's scale starts at zero when ``zero_init``, so that the block starts as the identity.

Deviations from the paper (a faithful single-scale version): one set of K sampled neighbours with one
dilation (the paper draws several sampling sets at different dilation rates and combines their messages) and
one message-passing step; the dynamic filters are channel-wise weights per group of channels, with the shared
1x1 conv of the update as the point-wise part; both the filters and the affinities are predicted from the
receiving node's feature h_i. The zero start of the offset conv follows deformable convolution, and the
zero-scale BatchNorm (``zero_init``) the non-local block; the paper does not state its initialisation.
The bilinear sampling is not counted in the planned FLOPs (``FlopCounterMode`` does not count it either).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DynamicGraphMessagePassing"]


class DynamicGraphMessagePassing(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    base: torch.Tensor
    """(K, 2): the base grid's (dy, dx) of each neighbour, dilation included, row-major."""

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, offset_kernel: int, group_channels: int, zero_init: bool
    ) -> None:
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"channels={channels} must be divisible by group_channels={group_channels}")
        if kernel_size % 2 != 1 or offset_kernel % 2 != 1:
            raise ValueError(f"kernel_size and offset_kernel must be odd, got {kernel_size} and {offset_kernel}")
        kk = kernel_size * kernel_size
        self.neighbours = kk
        self.groups = channels // group_channels
        self.offset = nn.Conv2d(channels, 2 * kk, offset_kernel, padding=offset_kernel // 2)  # (dy, dx) per neighbour
        for p in self.offset.parameters():  # zero offsets: the sampling starts on the base grid
            nn.init.zeros_(p)
        self.filters = nn.Conv2d(channels, self.groups * kk, 1)  # dynamic filters w_ik, per group
        self.affinity = nn.Conv2d(channels, kk, 1)  # affinity logits a_ik
        self.out = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        if zero_init:
            nn.init.zeros_(self.norm.weight)
        r = (torch.arange(kernel_size, dtype=torch.float32) - kernel_size // 2) * dilation
        grid = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).reshape(kk, 2)  # (K, 2): (dy, dx)
        self.register_buffer("base", grid, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        kk, g, n = self.neighbours, self.groups, h * w
        offsets = self.offset(x).reshape(b, kk, 2, n)  # (B, K, 2, N): (dy, dx) of each neighbour
        rows = torch.arange(h, dtype=x.dtype, device=x.device).repeat_interleave(w)  # (N,)
        cols = torch.arange(w, dtype=x.dtype, device=x.device).repeat(h)  # (N,)
        base = self.base.to(x.dtype)
        py = rows + base[:, 0:1] + offsets[:, :, 0]  # (B, K, N): sampled rows, in pixels
        px = cols + base[:, 1:2] + offsets[:, :, 1]
        grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # (B, K, N, 2): (x, y) in [-1, 1]
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, C, K, N)
        alpha = self.affinity(x).reshape(b, 1, kk, n).softmax(dim=2)  # (B, 1, K, N): over the K sampled nodes
        weights = alpha * self.filters(x).reshape(b, g, kk, n)  # alpha_ik w_ik: (B, G, K, N)
        sampled = sampled.reshape(b, g, c // g, kk, n)  # (B, G, C/G, K, N)
        messages = torch.einsum("bgkn,bgckn->bgcn", weights, sampled).reshape(b, c, h, w)  # m_i: (B, C, H, W)
        return x + self.norm(self.out(messages))
