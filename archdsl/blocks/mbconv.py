"""Inverted residual (MBConv) block: MobileNetV2 (Sandler et al. 2018, arXiv:1801.04381) with EfficientNet's
squeeze-and-excitation (Tan & Le 2019, arXiv:1905.11946); ``archdsl.nn.mbconv.MBConv``.

E = round(C_in * expand_ratio); the expansion conv is left out when expand_ratio == 1. The attention sits
after the depthwise conv (where EfficientNet puts its SE). By default it is EfficientNet's SE, whose reduced
width is floor(C_in * se_ratio) (at least 1), relative to the block input, with the block's activation; an
``attention`` field replaces it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.attention.attach import Attached, plan_attention
from archdsl.attention.se import se_node
from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, same_size
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, BlockSpecBase, OddKernel

__all__ = ["MBConvSpec"]


class MBConvSpec(BlockSpecBase):
    """1x1 expand -> k x k depthwise -> attention (SE) -> 1x1 linear project, residual when shapes match."""

    type: Literal["mbconv"]
    expand_ratio: float = Field(4.0, gt=0.0, le=16.0)
    """Expanded width / input channels; the expanded width round(C_in * ratio) must be positive."""
    kernel_size: OddKernel = 3
    """Depthwise kernel size (odd)."""
    se_ratio: float = Field(0.25, ge=0.0, le=1.0)
    """Reduced width / input channels of the default SE (EfficientNet); 0 disables it."""
    act: ActName = "silu"
    """Activation after the expansion, the depthwise conv and inside the default SE."""
    attention: Attached = None
    """Attention after the depthwise conv, instead of the default SE (``se``, ``eca``, ``cbam``, ... or a
    mapping with its fields; ``none``: no attention at all)."""


def _plan(spec: MBConvSpec, ctx: Ctx) -> Node:
    c_in, h, w = ctx.in_shape
    c_out, k, s = ctx.out_channels, spec.kernel_size, ctx.stride
    expand = spec.expand_ratio != 1.0
    mid = round(c_in * spec.expand_ratio)  # c_in when there is no expansion
    require(
        mid > 0,
        ctx.path + ".expand_ratio",
        f"the expanded width round({c_in} x {spec.expand_ratio}) must be positive, got {mid}",
    )
    ho, wo = (same_size(n, s) for n in (h, w))
    attention: Node | None
    if spec.attention is not None:
        attention = plan_attention(spec.attention, ctx, (mid, ho, wo))
    elif spec.se_ratio > 0:
        se = max(1, int(c_in * spec.se_ratio + 1e-9))
        attention = se_node(ctx.child("attention", (mid, ho, wo), out_channels=mid, stride=1), mid, se, spec.act)
    else:
        attention = None
    total = cost.conv_bn(c_in, mid, 1, (h, w)) if expand else cost.Cost()
    total = total + cost.conv_bn(mid, mid, k, (ho, wo), groups=mid) + cost.conv_bn(mid, c_out, 1, (ho, wo))
    kwargs = {
        "in_channels": c_in,
        "out_channels": c_out,
        "mid_channels": mid,
        "kernel_size": k,
        "stride": s,
        "act": spec.act,
        "drop_path": ctx.drop_path,
        "expand": expand,
        "attention": attention.recipe if attention else None,
    }
    children = [attention] if attention else []
    return make_node(ctx, "block", spec.type, (c_out, ho, wo), "archdsl.nn.mbconv.MBConv", kwargs, total, children)


_EXAMPLE = {
    "channels": 24,
    "stride": 2,
    "blocks": [{"type": type_name(MBConvSpec), "repeat": 2, "expand_ratio": 4.0, "kernel_size": 5, "se_ratio": 0.25}],
}
BLOCKS.add(Kind.of(MBConvSpec, _plan, example=_EXAMPLE))
