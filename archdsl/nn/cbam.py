"""CBAM: Convolutional Block Attention Module (Woo et al. 2018, arXiv:1807.06521).

Channel attention (eq. 2): ``M_c = sigmoid(MLP(avgpool(F)) + MLP(maxpool(F)))`` with one shared MLP
``C -> C/r -> C`` (ReLU between, biases as in the authors' code); ``F' = M_c * F``. Spatial attention
(eq. 3): ``M_s = sigmoid(f_kxk([avgpool_c(F'); maxpool_c(F')]))``; ``F'' = M_s * F'``. The channel
attention comes first (the paper's best order). Deviation: ``f_kxk`` is a k x k conv (2 -> 1, padding
(k-1)/2, no bias) followed by a BatchNorm, as in the authors' code (the paper names only the conv).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBlockAttention"]


class ConvBlockAttention(nn.Module):
    """Channel gate from the average- and max-pooled map, then spatial gate from the channel-pooled map."""

    def __init__(self, channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.spatial_norm = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))  # (B, C, 1, 1)
        mx = self.fc2(self.relu(self.fc1(x.amax(dim=(2, 3), keepdim=True))))  # (B, C, 1, 1)
        x = x * torch.sigmoid(avg + mx)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return x * torch.sigmoid(self.spatial_norm(self.spatial(pooled)))  # (B, 1, H, W) gate
