"""Double attention block (Chen, Kalantidis, Li, Yan and Feng 2018, "A^2-Nets: Double Attention Networks",
arXiv:1810.11579).

Over the N = H*W positions of a (B, C, H, W) map, three 1x1 convs (with bias) give ``A = phi(X)`` (c_m
feature maps), ``theta(X)`` (c_n maps) and ``rho(X)`` (c_n maps). The first attention gathers:
``B = softmax over the N positions of each theta map`` (the attention maps) and ``G = A B^T`` (c_m x c_n
global descriptors: second-order attention pooling). The second distributes: at each
position ``v_i = softmax over the c_n descriptors of rho(x_i)`` (the attention vector) and
``z_i = G v_i``. A 1x1 conv (with bias) expands Z from c_m back to C channels and the result
is added to the input (the paper's block): ``out = X + W_out Z``.

The paper's block has no normalisation layer, so none is added here. ``zero_init`` starts the output conv's
weight and bias at zero so that the block starts as the identity; this is an option, not from the paper
(which does not say how the block is initialised). No other deviation from the paper.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DoubleAttention"]


class DoubleAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, c_m: int, c_n: int, zero_init: bool) -> None:
        super().__init__()
        self.phi = nn.Conv2d(channels, c_m, 1)  # A: the features to gather
        self.theta = nn.Conv2d(channels, c_n, 1)  # B: the attention maps (gathering)
        self.rho = nn.Conv2d(channels, c_n, 1)  # V: the attention vectors (distribution)
        self.out = nn.Conv2d(c_m, channels, 1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.get_parameter("bias"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        a = self.phi(x).flatten(2)  # (B, c_m, N)
        maps = self.theta(x).flatten(2).softmax(dim=-1)  # (B, c_n, N): each map sums to 1 over positions
        vectors = self.rho(x).flatten(2).softmax(dim=1)  # (B, c_n, N): each position's vector sums to 1
        g = a @ maps.transpose(1, 2)  # (B, c_m, c_n): the gathered global descriptors
        z = (g @ vectors).reshape(b, -1, h, w)  # (B, c_m, H, W): z_i = G v_i
        return x + self.out(z)
