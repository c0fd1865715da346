"""Bottleneck residual block with a pluggable spatial mixer.

ResNet v1.5 (He et al. 2016, arXiv:1512.03385; stride on the 3x3 as in torchvision), BoTNet (Srinivas et
al. 2021, arXiv:2101.11605) and HaloNet (Vaswani et al. 2021, arXiv:2103.12731) blocks differ only in the
mixer: ``1x1 (C_in -> w) -> mixer (w -> m, stride) -> BN -> act -> 1x1 (m -> C_out) -> BN -> + shortcut
-> act``.
The shortcut is a strided 1x1 conv + BN when the shape changes, identity otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import torch
from pydantic import Field
from torch import nn

import archdsl.mixers  # noqa: F401  (registers every mixer)
from archdsl.layers.act import ActName, make_act
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.layers.drop_path import DropPath
from archdsl.plan.cost import batchnorm
from archdsl.plan.kind import BLOCKS, MIXERS, Kind, tagged_union
from archdsl.plan.rules import require_divisible
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import BlockSpecBase

__all__ = ["Bottleneck", "BottleneckSpec"]

if TYPE_CHECKING:  # built from the registry at import time
    MixerSpec: TypeAlias = Any
else:
    MixerSpec = tagged_union(MIXERS)


class BottleneckSpec(BlockSpecBase):
    """1x1 reduce -> spatial mixer -> 1x1 expand, with a residual connection."""

    type: Literal["bottleneck"]
    width: int | None = Field(None, gt=0)
    """Mixer input width w; default: stage channels / expansion."""
    expansion: int = Field(4, ge=1)
    """Stage channels / w when ``width`` is not given."""
    mixer: MixerSpec = Field(default_factory=lambda: {"type": "conv"})
    """Spatial mixer: ``conv``, ``halo`` or ``global_attention``."""
    act: ActName = "relu"
    """Activation."""
    zero_init_last: bool = True
    """Initialise the last BN's scale to zero so the block starts as identity (Goyal et al. 2017)."""


class Bottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        mixer: nn.Module,
        mixer_channels: int,
        stride: int = 1,
        act: str = "relu",
        zero_init_last: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.reduce = ConvBN(in_channels, width, 1, act=act)
        self.mixer = mixer
        self.mixer_norm = nn.BatchNorm2d(mixer_channels)
        self.mixer_act = make_act(act)
        self.expand = ConvBN(mixer_channels, out_channels, 1, act=None, zero_init=zero_init_last)
        self.shortcut = (
            ConvBN(in_channels, out_channels, 1, stride, act=None)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.drop_path = DropPath(drop_path)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer_act(self.mixer_norm(self.mixer(self.reduce(x))))
        return self.act(self.shortcut(x) + self.drop_path(self.expand(y)))


def _width(spec: BottleneckSpec, ctx: Ctx) -> int:
    if spec.width is not None:
        return spec.width
    require_divisible(ctx.out_channels, spec.expansion, ctx.path + ".expansion", "stage channels", "expansion")
    return ctx.out_channels // spec.expansion


def _mixer_ctx(spec: BottleneckSpec, ctx: Ctx) -> Ctx:
    _, h, w = ctx.in_shape
    return Ctx(
        (_width(spec, ctx), h, w),
        ctx.path + ".mixer",
        0,
        ctx.stride,
        ctx.repeat,
        ctx.input_size,
        ctx.in_stride,
    )


def _plan(spec: BottleneckSpec, ctx: Ctx) -> Planned:
    c_in, h, w = ctx.in_shape
    c_out = ctx.out_channels
    wd = _width(spec, ctx)
    mixed = MIXERS.get(spec.mixer.type).plan(spec.mixer, _mixer_ctx(spec, ctx))
    m, ho, wo = mixed.out_shape
    cost = conv_bn_cost(c_in, wd, 1, (h, w)) + mixed.cost + batchnorm(m) + conv_bn_cost(m, c_out, 1, (ho, wo))
    if ctx.stride != 1 or c_in != c_out:
        cost = cost + conv_bn_cost(c_in, c_out, 1, (ho, wo))
    return Planned((c_out, ho, wo), cost)


def _build(spec: BottleneckSpec, ctx: Ctx) -> nn.Module:
    mctx = _mixer_ctx(spec, ctx)
    kind = MIXERS.get(spec.mixer.type)
    m = kind.plan(spec.mixer, mctx).out_shape[0]
    return Bottleneck(
        ctx.in_shape[0],
        ctx.out_channels,
        mctx.in_shape[0],
        kind.build(spec.mixer, mctx),
        m,
        ctx.stride,
        spec.act,
        spec.zero_init_last,
        ctx.drop_path,
    )


_EXAMPLE = {"channels": 32, "stride": 2, "blocks": [{"type": "bottleneck", "repeat": 2}]}
BLOCKS.register("bottleneck", Kind("bottleneck", BottleneckSpec, _plan, _build, example=_EXAMPLE))
