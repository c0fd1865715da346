"""Squeeze-and-Excitation Networks (Hu et al. 2018, arXiv:1709.01507).

``s = sigmoid(W2 act(W1 mean_hw(x) + b1) + b2)``, ``y = x * s`` (channel-wise rescaling). The two fully
connected layers are 1x1 convolutions with bias on the pooled (B, C, 1, 1) map, which is the same function
and keeps the (B, C, H, W) layout. Deviation: the paper fixes the inner activation to ReLU; here it is an
argument (EfficientNet, arXiv:1905.11946, uses SiLU), and the reduced width is given directly rather than
as a reduction ratio r.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.act import make_act

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Mean over H, W -> 1x1 conv C->C_r (bias) -> act -> 1x1 conv C_r->C (bias) -> sigmoid -> x * gate."""

    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        s = self.expand(self.act(self.reduce(s)))  # (B, C, 1, 1) -> (B, C_r, 1, 1) -> (B, C, 1, 1)
        return x * self.gate(s)
