"""Bottleneck residual block with a pluggable spatial mixer (``archdsl.nn.bottleneck.Bottleneck``).

ResNet v1.5 (He et al. 2016, arXiv:1512.03385), BoTNet (Srinivas et al. 2021, arXiv:2101.11605) and HaloNet
(Vaswani et al. 2021, arXiv:2103.12731) blocks differ only in the mixer. Attached attention sits after the
last 1x1 conv's BN, before the sum (SE-ResNet, CBAM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from archdsl.attention.attach import Attached, plan_attention
from archdsl.kinds import BLOCKS, MIXERS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require_divisible
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, BlockSpecBase

__all__ = ["BottleneckSpec"]

if TYPE_CHECKING:  # the union of registered mixers, filled in when the spec models are built
    MixerSpec = Any


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
    attention: Attached = None
    """Attention on the residual branch, after the last 1x1 conv's BN and before the sum (``se``, ``eca``,
    ``cbam``, ... or a mapping with its fields; ``none``: no attention)."""


def _plan(spec: BottleneckSpec, ctx: Ctx) -> Node:
    c_in, h, w = ctx.in_shape
    c_out = ctx.out_channels
    if spec.width is not None:
        wd = spec.width
    else:
        require_divisible(c_out, spec.expansion, ctx.path + ".expansion", "stage channels", "expansion")
        wd = c_out // spec.expansion
    mixer = MIXERS.get(spec.mixer.type).plan(spec.mixer, ctx.child("mixer", (wd, h, w), out_channels=0))
    m, ho, wo = mixer.out_shape
    attention = plan_attention(spec.attention, ctx, (c_out, ho, wo))
    total = cost.conv_bn(c_in, wd, 1, (h, w)) + cost.batchnorm(m) + cost.conv_bn(m, c_out, 1, (ho, wo))
    if ctx.stride != 1 or c_in != c_out:
        total = total + cost.conv_bn(c_in, c_out, 1, (ho, wo))
    kwargs = {
        "in_channels": c_in,
        "out_channels": c_out,
        "width": wd,
        "mixer": mixer.recipe,
        "mixer_channels": m,
        "stride": ctx.stride,
        "act": spec.act,
        "zero_init_last": spec.zero_init_last,
        "drop_path": ctx.drop_path,
        "attention": attention.recipe if attention else None,
    }
    children = [mixer, *([attention] if attention else [])]
    return make_node(
        ctx, "block", spec.type, (c_out, ho, wo), "archdsl.nn.bottleneck.Bottleneck", kwargs, total, children
    )


_EXAMPLE = {"channels": 32, "stride": 2, "blocks": [{"type": type_name(BottleneckSpec), "repeat": 2}]}
BLOCKS.add(Kind.of(BottleneckSpec, _plan, example=_EXAMPLE))
