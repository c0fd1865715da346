"""ResNet basic block (Deep Residual Learning for Image Recognition, He et al. 2016, arXiv:1512.03385).

``k x k conv (stride) -> BN -> act -> k x k conv -> BN -> [attention] -> + shortcut -> act``. The shortcut
is a strided 1x1 conv + BN (the paper's option B projection) when the channels or the map size change,
identity otherwise. Additions to the paper: optional zero-initialised last BN scale (Goyal et al. 2017,
arXiv:1706.02677), stochastic depth on the residual branch, an attached attention module on the residual
branch before the sum (where SE-Net and CBAM put it), and a configurable kernel size and activation.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.act import make_act
from archdsl.nn.conv_bn import ConvBN, residual_sum, shortcut
from archdsl.nn.drop_path import DropPath

__all__ = ["BasicBlock"]


class BasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kernel_size: int,
        act: str,
        zero_init_last: bool,
        drop_path: float,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, kernel_size, stride, act=act)
        self.conv2 = ConvBN(out_channels, out_channels, kernel_size, 1, act=None, zero_init=zero_init_last)
        self.attention = attention if attention is not None else nn.Identity()
        self.sum_in_place = attention is None or isinstance(attention, nn.Identity)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop_path(self.attention(self.conv2(self.conv1(x))))
        return self.act(residual_sum(y, self.shortcut(x), self.sum_in_place))
