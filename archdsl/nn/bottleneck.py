"""Bottleneck residual block with a pluggable spatial mixer.

ResNet v1.5 (He et al. 2016, arXiv:1512.03385; stride on the 3x3 as in torchvision), BoTNet (Srinivas et
al. 2021, arXiv:2101.11605) and HaloNet (Vaswani et al. 2021, arXiv:2103.12731) blocks differ only in the
mixer: ``1x1 (C_in -> w) -> mixer (w -> m, stride) -> BN -> act -> 1x1 (m -> C_out) -> BN -> [attention]
-> + shortcut -> act``. The shortcut is a strided 1x1 conv + BN when the shape changes, identity otherwise.
An attached attention module sits on the residual branch after the last BN, before the sum: where
SE-ResNet (Hu et al. 2018, arXiv:1709.01507) and CBAM (Woo et al. 2018, arXiv:1807.06521) put it.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.act import make_act
from archdsl.nn.conv_bn import ConvBN, residual_sum, shortcut
from archdsl.nn.drop_path import DropPath

__all__ = ["Bottleneck"]


class Bottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        mixer: nn.Module,
        mixer_channels: int,
        stride: int,
        act: str,
        zero_init_last: bool,
        drop_path: float,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.reduce = ConvBN(in_channels, width, 1, 1, act=act)
        self.mixer = mixer
        self.mixer_norm = nn.BatchNorm2d(mixer_channels)
        self.mixer_act = make_act(act)
        self.expand = ConvBN(mixer_channels, out_channels, 1, 1, act=None, zero_init=zero_init_last)
        self.attention = attention if attention is not None else nn.Identity()
        self.sum_in_place = attention is None or isinstance(attention, nn.Identity)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer_act(self.mixer_norm(self.mixer(self.reduce(x))))
        y = self.drop_path(self.attention(self.expand(y)))
        return self.act(residual_sum(y, self.shortcut(x), self.sum_in_place))
