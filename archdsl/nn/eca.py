"""ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks (Wang et al. 2020,
arXiv:1910.03151).

``s = sigmoid(conv1d_k(mean_hw(x)))`` over the channel axis (one shared k-tap filter, no bias, zero
padding (k-1)/2), ``y = x * s``. The kernel size is given by the planner (the paper's adaptive
``k = |log2(C)/gamma + b/gamma|_odd``, gamma = 2, b = 1, or a fixed k). No deviation from the paper.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EfficientChannelAttention"]


class EfficientChannelAttention(nn.Module):
    """Mean over H, W -> 1-D conv across channels (k taps, no bias) -> sigmoid -> x * gate."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        s = self.conv(s.unsqueeze(1)).squeeze(1)  # (B, 1, C) -> (B, C): k neighbouring channels
        return x * torch.sigmoid(s)[:, :, None, None]
