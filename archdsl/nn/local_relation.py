"""Local relation bottleneck (Hu et al. 2019, "Local Relation Networks for Image Recognition", arXiv:1904.11491).

The local relation (LR) layer (paper section 3, eq. 2, Figure 2) on a (B, C, H, W) map, with the C channels
split into G = C / m groups of m channels that share their aggregation weights (channel sharing):

``y_c(p) = sum_{p' in Omega(p)} w_g(p, p') x_c(p')`` for the channels c of group g, with
``w_g(p, p') = softmax_{p'}(Phi(q_g(p), k_g(p')) + f_g(p' - p))`` over the k x k window Omega(p):

- ``q = W_q x`` and ``k = W_k x`` are 1x1 convs (no bias) to one scalar per group (G channels);
- the appearance composability ``Phi`` is ``q k`` (``multiplication``) or ``-(q - k)^2``
  (``squared_difference``), the forms the paper compares;
- the geometry prior ``f(dy, dx) = W_2 ReLU(W_1 (dy, dx) + b_1) + b_2`` is a small MLP from the 2-D relative
  position (integer offsets, key minus query) to one value per group;
- the value aggregated is the input itself (no value transform).

Keys outside the map are left out of the softmax (masked), so a border pixel's window holds only the
positions of the map, as Omega(p) is a neighbourhood in the image; the values there are never read.
The block is the paper's LR bottleneck: ``ReLU(x + BN(conv1x1(ReLU(BN(LR(ReLU(BN(conv1x1(x)))))))))``, the
ResNet bottleneck with its 3x3 conv replaced by the LR layer.
Deviations from the paper: the query and key 1x1 convs have no bias (a key bias cannot change a
``multiplication`` softmax); the geometry MLP's hidden width is a field (``geometry_hidden``) as the paper
does not fix it in the text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["LR_COMPOSABILITY", "LocalRelation", "LocalRelationBottleneck"]

LR_COMPOSABILITY = ("multiplication", "squared_difference")


class LocalRelation(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): the local relation layer."""

    def __init__(
        self, channels: int, kernel_size: int, group_channels: int, geometry_hidden: int, composability: str
    ) -> None:
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"channels={channels} must be divisible by group_channels={group_channels}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if composability not in LR_COMPOSABILITY:
            raise ValueError(f"composability must be one of {LR_COMPOSABILITY}, got {composability!r}")
        self.k = kernel_size
        self.m = group_channels
        self.groups = channels // group_channels
        self.composability = composability
        self.query = nn.Conv2d(channels, self.groups, 1, bias=False)
        self.key = nn.Conv2d(channels, self.groups, 1, bias=False)
        self.geometry = nn.Sequential(nn.Linear(2, geometry_hidden), nn.ReLU(), nn.Linear(geometry_hidden, self.groups))
        r = torch.arange(kernel_size, dtype=torch.float32) - kernel_size // 2
        offsets = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).reshape(-1, 2)  # (k*k, 2): (dy, dx)
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        kk, g, pad = self.k * self.k, self.groups, self.k // 2
        q = self.query(x).reshape(b, g, 1, h * w)
        keys = F.unfold(self.key(x), kernel_size=self.k, padding=pad, stride=1).reshape(b, g, kk, h * w)
        logits = q * keys if self.composability == "multiplication" else -(q - keys).square()
        prior = self.geometry(self.offsets.to(x.dtype)).t()  # (G, k*k)
        logits = logits + prior.reshape(1, g, kk, 1)
        inside = F.unfold(x.new_ones(1, 1, h, w), kernel_size=self.k, padding=pad, stride=1)  # (1, k*k, N)
        logits = logits.masked_fill(inside.reshape(1, 1, kk, h * w) == 0, float("-inf"))
        weights = logits.softmax(dim=2)  # over the window
        values = F.unfold(x, kernel_size=self.k, padding=pad, stride=1).reshape(b, g, self.m, kk, h * w)
        y = torch.einsum("bgjn,bgcjn->bgcn", weights, values)
        return y.reshape(b, c, h, w)


class LocalRelationBottleneck(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): 1x1 reduce, LR layer + BN + ReLU, 1x1 expand + BN, residual, ReLU."""

    def __init__(
        self, channels: int, width: int, kernel_size: int, group_channels: int, geometry_hidden: int, composability: str
    ) -> None:
        super().__init__()
        self.reduce = ConvBN(channels, width, 1, 1, act="relu")
        self.relation = LocalRelation(width, kernel_size, group_channels, geometry_hidden, composability)
        self.norm = nn.BatchNorm2d(width)
        self.expand = ConvBN(width, channels, 1, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm(self.relation(self.reduce(x))))
        return F.relu(x + self.expand(y))
