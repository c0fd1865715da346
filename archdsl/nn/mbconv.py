"""Inverted residual (MBConv) block.

MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al. 2018, arXiv:1801.04381), with the
squeeze-and-excitation of EfficientNet (Tan & Le 2019, arXiv:1905.11946) as its attached attention:
``1x1 expand (C_in -> E) -> BN -> act -> k x k depthwise (stride) -> BN -> act -> [attention] -> 1x1 project
(E -> C_out) -> BN`` (linear bottleneck: no activation after the projection), ``+ x`` only when the stride
is 1 and C_in == C_out. The expansion conv is left out when expand_ratio == 1. Deviations: MobileNetV2
uses ReLU6 (not offered; the default here is EfficientNet's SiLU); stochastic depth on the residual branch.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.conv_bn import ConvBN
from archdsl.nn.drop_path import DropPath

__all__ = ["MBConv"]


class MBConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int,
        stride: int,
        act: str,
        drop_path: float,
        expand: bool,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not expand and mid_channels != in_channels:
            raise ValueError(f"without expansion mid_channels must equal in_channels={in_channels}")
        self.expand = ConvBN(in_channels, mid_channels, 1, 1, act=act) if expand else nn.Identity()
        self.depthwise = ConvBN(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act)
        self.se = attention if attention is not None else nn.Identity()
        self.project = ConvBN(mid_channels, out_channels, 1, 1, act=None)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop_path(y) if self.residual else y
