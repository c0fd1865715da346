"""VOLO patch-embedding stem (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition",
arXiv:2106.13112).

``conv 7x7/2 -> BN -> ReLU -> [conv 3x3/1 -> BN -> ReLU] x 2`` at ``hidden`` channels (no conv biases), then
a non-overlapping ``(p/2) x (p/2)`` conv with stride ``p/2`` and a bias to ``channels``: ``/p`` overall
(``p = patch_size``; VOLO uses 8, i.e. a 4x4/4 projection). No deviation from the paper's stem.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.plan.cost import conv
from archdsl.plan.kind import STEMS, Kind
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["PatchEmbedStem", "PatchEmbedStemSpec"]


class PatchEmbedStemSpec(SpecModel):
    """Three conv-BN-ReLU layers (the first with stride 2), then a patch projection: /patch_size in all."""

    type: Literal["patch_embed"]
    channels: int = Field(gt=0)
    """Output channels (the token width C0)."""
    hidden: int = Field(64, gt=0)
    """Width of the three stem convolutions (VOLO: 64, D5: 128)."""
    patch_size: int = Field(8, ge=2, le=32, multiple_of=2)
    """Total stride (even): the projection is a (patch_size/2) x (patch_size/2) conv with that stride."""


class PatchEmbedStem(nn.Sequential):
    def __init__(self, in_channels: int, channels: int, hidden: int, patch_size: int) -> None:
        proj = patch_size // 2
        super().__init__(
            ConvBN(in_channels, hidden, 7, 2),
            ConvBN(hidden, hidden, 3, 1),
            ConvBN(hidden, hidden, 3, 1),
            nn.Conv2d(hidden, channels, proj, proj),
        )


def _plan(spec: PatchEmbedStemSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    p = spec.patch_size
    require(
        h % p == 0 and w % p == 0,
        ctx.path + ".patch_size",
        f"the input {h}x{w} must be divisible by patch_size={p}{ctx.where()}",
    )
    half = (h // 2, w // 2)
    out = (h // p, w // p)
    cost = (
        conv_bn_cost(c, spec.hidden, 7, half)
        + conv_bn_cost(spec.hidden, spec.hidden, 3, half) * 2
        + conv(spec.hidden, spec.channels, p // 2, out, bias=True)
    )
    return Planned((spec.channels, *out), cost)


def _build(spec: PatchEmbedStemSpec, ctx: Ctx) -> nn.Module:
    return PatchEmbedStem(ctx.in_shape[0], spec.channels, spec.hidden, spec.patch_size)


_EXAMPLE = {"type": "patch_embed", "channels": 24, "hidden": 16, "patch_size": 4}
STEMS.register("patch_embed", Kind("patch_embed", PatchEmbedStemSpec, _plan, _build, example=_EXAMPLE))
