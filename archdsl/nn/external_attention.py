"""External attention (Guo, Liu, Mu and Hu 2021, "Beyond Self-attention: External Attention using Two Linear
Layers for Visual Tasks", arXiv:2105.02358).

Over the N = H*W positions of a (B, C, H, W) map: ``F = W_in x + b`` (a 1x1 conv with bias), then two
external memory units of S rows, ``M_k`` and ``M_v`` (linear layers without bias, shared by all samples):
``attn = F M_k^T`` (N x S), double normalisation (paper eq. 5): a softmax over the N positions for each
memory row, then an l1 normalisation over the S rows at each position, and ``F_out = attn M_v`` (eq. 3-4).
With ``heads`` > 1 (paper eq. 6-7), F is split along channels into ``heads`` groups of C / heads that
share the same memories (S x C / heads each), and the heads are concatenated. The block is the residual
form of the authors' segmentation head: ``out = ReLU(x + BN(W_out F_out))`` with ``W_out`` a 1x1 conv
without bias; ``relu`` keeps (the authors' code) or drops the final ReLU.

Deviations from the paper: as in the authors' code, the l1 normalisation divides by ``1e-9 + sum``, and
``M_v`` starts as the transpose of ``M_k`` (both drawn N(0, 2 / S)); the multi-head variant of the paper's
EAMLP also widens the channels by 4 before the heads and projects back, which is not done here (the heads
split the block's own C channels, and the 1x1 convs in and out play the projections' part).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ExternalAttention"]


class ExternalAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, memory: int, heads: int, relu: bool) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        self.heads = heads
        self.relu = relu
        d = channels // heads
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.memory_key = nn.Linear(d, memory, bias=False)  # M_k: weight (S, d)
        self.memory_value = nn.Linear(memory, d, bias=False)  # M_v: weight (d, S)
        with torch.no_grad():
            self.memory_key.weight.normal_(0.0, math.sqrt(2.0 / memory))
            self.memory_value.weight.copy_(self.memory_key.weight.t())
        self.proj_out = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        f = self.proj_in(x).reshape(b, self.heads, c // self.heads, h * w)  # (B, heads, d, N)
        attn = torch.matmul(self.memory_key.weight, f)  # (B, heads, S, N): M_k F^T
        attn = attn.softmax(dim=-1)  # over the N positions
        attn = attn / (1e-9 + attn.sum(dim=-2, keepdim=True))  # l1 over the S memory rows
        y = torch.matmul(self.memory_value.weight, attn).reshape(b, c, h, w)  # (B, C, H, W): (attn M_v)^T
        y = x + self.norm(self.proj_out(y))
        return torch.relu(y) if self.relu else y
