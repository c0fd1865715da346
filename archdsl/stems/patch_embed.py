"""VOLO patch-embedding stem (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition",
arXiv:2106.13112; ``archdsl.nn.patch_embed.PatchEmbedStem``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import STEMS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import SpecModel

__all__ = ["PatchEmbedStemSpec"]


class PatchEmbedStemSpec(SpecModel):
    """Three conv-BN-ReLU layers (the first with stride 2), then a patch projection: /patch_size in all."""

    type: Literal["patch_embed"]
    channels: int = Field(gt=0)
    """Output channels (the token width C0)."""
    hidden: int = Field(64, gt=0)
    """Width of the three stem convolutions (VOLO: 64, D5: 128)."""
    patch_size: int = Field(8, ge=2, le=32, multiple_of=2)
    """Total stride (even): the projection is a (patch_size/2) x (patch_size/2) conv with that stride."""


def _plan(spec: PatchEmbedStemSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    p = spec.patch_size
    require(
        h % p == 0 and w % p == 0,
        ctx.path + ".patch_size",
        f"the input {h}x{w} must be divisible by patch_size={p}{ctx.where()}",
    )
    half, out = (h // 2, w // 2), (h // p, w // p)
    total = (
        cost.conv_bn(c, spec.hidden, 7, half)
        + cost.conv_bn(spec.hidden, spec.hidden, 3, half) * 2
        + cost.conv(spec.hidden, spec.channels, p // 2, out, bias=True)
    )
    kwargs = {"in_channels": c, "channels": spec.channels, "hidden": spec.hidden, "patch_size": p}
    return make_node(
        ctx, "stem", spec.type, (spec.channels, *out), "archdsl.nn.patch_embed.PatchEmbedStem", kwargs, total
    )


_EXAMPLE = {"type": type_name(PatchEmbedStemSpec), "channels": 24, "hidden": 16, "patch_size": 4}
STEMS.add(Kind.of(PatchEmbedStemSpec, _plan, example=_EXAMPLE))
