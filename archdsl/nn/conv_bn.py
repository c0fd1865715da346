"""Conv2d -> BatchNorm2d -> optional activation, the brick of every conv stem and block."""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.act import make_act

__all__ = ["ConvBN", "residual_sum", "shortcut"]


class ConvBN(nn.Sequential):
    """``conv(k, stride, padding=k//2, no bias) -> BN -> act``; ``act=None`` leaves the activation out."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        *,
        act: str | None,
        groups: int = 1,
        zero_init: bool = False,
    ) -> None:
        norm = nn.BatchNorm2d(out_channels)
        if zero_init:
            nn.init.zeros_(norm.weight)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            norm,
        ]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The residual path of a conv block: a 1x1 ``ConvBN`` projection (no activation) where the block changes
    the channels or the resolution, the identity otherwise (ResNet's option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBN(in_channels, out_channels, 1, stride, act=None)


def residual_sum(branch: torch.Tensor, skip: torch.Tensor, in_place: bool) -> torch.Tensor:
    """``branch + skip``; in place onto ``branch`` when the caller knows no backward needs that tensor (a BN
    output: no new tensor). Attached attention is arbitrary code whose backward may need its output."""
    return branch.add_(skip) if in_place else skip + branch
