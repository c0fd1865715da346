"""Single-conv stem: ``conv k/s -> BN -> act [-> 3x3/2 max pool]``.

With ``kernel_size: 7, stride: 2, pool: max`` it is the ResNet stem (He et al. 2016, arXiv:1512.03385).
"""

from __future__ import annotations

from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["ConvStem"]


class ConvStem(nn.Sequential):
    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, pool: bool, act: str) -> None:
        layers: list[nn.Module] = [ConvBN(in_channels, channels, kernel_size, stride, act=act)]
        if pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        super().__init__(*layers)
