"""Pooled classifier head: ``[1x1 conv -> BN -> act to d_f] -> global average pool -> [dropout] -> fc``."""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["ClassifierHead"]


class ClassifierHead(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, final_channels: int | None, dropout: float, act: str
    ) -> None:
        super().__init__()
        self.final = ConvBN(in_channels, final_channels, 1, 1, act=act) if final_channels else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(final_channels or in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(x).mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        return self.fc(self.dropout(x))
