"""Learned absolute position embedding added to a (B, C, H, W) map."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PositionEmbedding"]


class PositionEmbedding(nn.Module):
    """``x + pos`` with a learned ``pos`` of shape (1, C, H, W), truncated-normal initialised."""

    NO_WEIGHT_DECAY = ("pos",)
    """An embedding: trained without weight decay."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, channels, height, width))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos
