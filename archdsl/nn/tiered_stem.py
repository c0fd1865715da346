"""Tiered deep stem: a stack of 3x3 conv + BN + act layers, the first strided, optionally a 3x3/2 max pool.

The deep stem of ResNet-D (Bag of Tricks for Image Classification with Convolutional Neural Networks,
He et al. 2019, arXiv:1812.01187: three 3x3 convs replacing the 7x7) with per-layer ("tiered") widths, as
in the HaloNet-style ResNet variants (default widths 24, 32, 64). Any number of layers is allowed.
"""

from __future__ import annotations

from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["TieredStem"]


class TieredStem(nn.Sequential):
    def __init__(self, in_channels: int, channels: list[int], stride: int, pool: bool, act: str) -> None:
        layers: list[nn.Module] = []
        c = in_channels
        for i, out in enumerate(channels):
            layers.append(ConvBN(c, out, 3, stride if i == 0 else 1, act=act))
            c = out
        if pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        super().__init__(*layers)
