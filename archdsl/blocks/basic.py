"""ResNet basic block (Deep Residual Learning for Image Recognition, He et al. 2016, arXiv:1512.03385).

``k x k conv (stride) -> BN -> act -> k x k conv -> BN -> + shortcut -> act``, the block of ResNet-18/34.
The shortcut is a strided 1x1 conv + BN (the paper's option B projection) when the channels or the map
size change, identity otherwise. Additions to the paper: optional zero-initialised last BN scale
(Goyal et al. 2017, arXiv:1706.02677), stochastic depth on the residual branch, and a configurable
kernel size and activation (the paper's block is 3x3 with ReLU).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from archdsl.layers.act import ActName, make_act
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.layers.drop_path import DropPath
from archdsl.plan.kind import BLOCKS, Kind
from archdsl.plan.rules import out_size
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["BasicBlock", "BasicBlockSpec"]


class BasicBlockSpec(BlockSpecBase):
    """Two k x k convs with a residual connection (ResNet-18/34); applies the stage's stride and width."""

    type: Literal["basic"]
    kernel_size: OddKernel = 3
    """Kernel size of both convs (odd)."""
    act: ActName = "relu"
    """Activation (after the first conv and after the sum)."""
    zero_init_last: bool = True
    """Initialise the last BN's scale to zero so the block starts as identity (Goyal et al. 2017)."""


class BasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        act: str = "relu",
        zero_init_last: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, kernel_size, stride, act=act)
        self.conv2 = ConvBN(out_channels, out_channels, kernel_size, act=None, zero_init=zero_init_last)
        self.shortcut = (
            ConvBN(in_channels, out_channels, 1, stride, act=None)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.drop_path = DropPath(drop_path)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return self.act(self.shortcut(x) + self.drop_path(y))


def _plan(spec: BasicBlockSpec, ctx: Ctx) -> Planned:
    c_in, h, w = ctx.in_shape
    c_out, k, s = ctx.out_channels, spec.kernel_size, ctx.stride
    ho, wo = (out_size(n, k, s, k // 2, ctx, ctx.path + ".kernel_size") for n in (h, w))
    cost = conv_bn_cost(c_in, c_out, k, (ho, wo)) + conv_bn_cost(c_out, c_out, k, (ho, wo))
    if s != 1 or c_in != c_out:
        cost = cost + conv_bn_cost(c_in, c_out, 1, (ho, wo))
    return Planned((c_out, ho, wo), cost)


def _build(spec: BasicBlockSpec, ctx: Ctx) -> nn.Module:
    return BasicBlock(
        ctx.in_shape[0],
        ctx.out_channels,
        ctx.stride,
        spec.kernel_size,
        spec.act,
        spec.zero_init_last,
        ctx.drop_path,
    )


_EXAMPLE = {"channels": 32, "stride": 2, "blocks": [{"type": "basic", "repeat": 2}]}
BLOCKS.register("basic", Kind("basic", BasicBlockSpec, _plan, _build, example=_EXAMPLE))
