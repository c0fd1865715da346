"""Inverted residual (MBConv) block.

MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al. 2018, arXiv:1801.04381), with the
optional squeeze-and-excitation of EfficientNet (Tan & Le 2019, arXiv:1905.11946):
``1x1 expand (C_in -> E) -> BN -> act -> k x k depthwise (stride) -> BN -> act -> [SE] -> 1x1 project
(E -> C_out) -> BN`` (linear bottleneck: no activation after the projection), ``+ x`` only when the stride
is 1 and C_in == C_out. E = round(C_in * expand_ratio); the expansion conv is left out when
expand_ratio == 1. The SE's reduced width is floor(C_in * se_ratio) (at least 1), relative to the block
input as in EfficientNet, and it uses the block's activation. Deviations: MobileNetV2 uses ReLU6 (not
offered; the default here is EfficientNet's SiLU); stochastic depth is applied to the residual branch.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from archdsl.layers.act import ActName
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.layers.drop_path import DropPath
from archdsl.layers.se import SqueezeExcite, se_cost
from archdsl.plan.cost import Cost
from archdsl.plan.kind import BLOCKS, Kind
from archdsl.plan.rules import out_size, require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import BlockSpecBase, OddKernel

__all__ = ["MBConv", "MBConvSpec"]


class MBConvSpec(BlockSpecBase):
    """1x1 expand -> k x k depthwise -> optional SE -> 1x1 linear project, residual when shapes match."""

    type: Literal["mbconv"]
    expand_ratio: float = Field(4.0, gt=0.0, le=16.0)
    """Expanded width / input channels; the expanded width round(C_in * ratio) must be positive."""
    kernel_size: OddKernel = 3
    """Depthwise kernel size (odd)."""
    se_ratio: float = Field(0.25, ge=0.0, le=1.0)
    """SE reduced width / input channels (EfficientNet); 0 disables squeeze-and-excitation."""
    act: ActName = "silu"
    """Activation after the expansion, the depthwise conv and inside the SE."""


class MBConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_channels: int = 0,
        act: str = "silu",
        drop_path: float = 0.0,
        expand: bool = True,
    ) -> None:
        super().__init__()
        if not expand and mid_channels != in_channels:
            raise ValueError(f"without expansion mid_channels must equal in_channels={in_channels}")
        self.expand = ConvBN(in_channels, mid_channels, 1, act=act) if expand else nn.Identity()
        self.depthwise = ConvBN(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act)
        self.se = SqueezeExcite(mid_channels, se_channels, act) if se_channels > 0 else nn.Identity()
        self.project = ConvBN(mid_channels, out_channels, 1, act=None)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop_path(y) if self.residual else y


def _widths(spec: MBConvSpec, ctx: Ctx) -> tuple[int, int]:
    """(expanded width, SE reduced width or 0)."""
    c_in = ctx.in_shape[0]
    mid = c_in if spec.expand_ratio == 1.0 else round(c_in * spec.expand_ratio)
    require(
        mid > 0,
        ctx.path + ".expand_ratio",
        f"the expanded width round({c_in} x {spec.expand_ratio}) must be positive, got {mid}",
    )
    se = max(1, int(c_in * spec.se_ratio + 1e-9)) if spec.se_ratio > 0 else 0
    return mid, se


def _plan(spec: MBConvSpec, ctx: Ctx) -> Planned:
    c_in, h, w = ctx.in_shape
    c_out, k = ctx.out_channels, spec.kernel_size
    mid, se = _widths(spec, ctx)
    ho, wo = (out_size(n, k, ctx.stride, k // 2, ctx, ctx.path + ".kernel_size") for n in (h, w))
    cost = conv_bn_cost(c_in, mid, 1, (h, w)) if spec.expand_ratio != 1.0 else Cost()
    cost = cost + conv_bn_cost(mid, mid, k, (ho, wo), groups=mid)
    if se:
        cost = cost + se_cost(mid, se)
    return Planned((c_out, ho, wo), cost + conv_bn_cost(mid, c_out, 1, (ho, wo)))


def _build(spec: MBConvSpec, ctx: Ctx) -> nn.Module:
    mid, se = _widths(spec, ctx)
    return MBConv(
        ctx.in_shape[0],
        ctx.out_channels,
        mid,
        spec.kernel_size,
        ctx.stride,
        se,
        spec.act,
        ctx.drop_path,
        expand=spec.expand_ratio != 1.0,
    )


_EXAMPLE = {
    "channels": 24,
    "stride": 2,
    "blocks": [{"type": "mbconv", "repeat": 2, "expand_ratio": 4.0, "kernel_size": 5, "se_ratio": 0.25}],
}
BLOCKS.register("mbconv", Kind("mbconv", MBConvSpec, _plan, _build, example=_EXAMPLE))
