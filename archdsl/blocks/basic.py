"""ResNet basic block (Deep Residual Learning for Image Recognition, He et al. 2016, arXiv:1512.03385;
``archdsl.nn.basic.BasicBlock``). Attached attention sits after the second conv's BN, before the sum."""

from __future__ import annotations

from typing import Literal

from archdsl.attention.attach import Attached, plan_attention
from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import same_size
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, BlockSpecBase, OddKernel

__all__ = ["BasicBlockSpec"]


class BasicBlockSpec(BlockSpecBase):
    """Two k x k convs with a residual connection (ResNet-18/34); applies the stage's stride and width."""

    type: Literal["basic"]
    kernel_size: OddKernel = 3
    """Kernel size of both convs (odd)."""
    act: ActName = "relu"
    """Activation (after the first conv and after the sum)."""
    zero_init_last: bool = True
    """Initialise the last BN's scale to zero so the block starts as identity (Goyal et al. 2017)."""
    attention: Attached = None
    """Attention on the residual branch, after the second conv's BN and before the sum (``se``, ``eca``,
    ``cbam``, ... or a mapping with its fields; ``none``: no attention)."""


def _plan(spec: BasicBlockSpec, ctx: Ctx) -> Node:
    c_in, h, w = ctx.in_shape
    c_out, k, s = ctx.out_channels, spec.kernel_size, ctx.stride
    ho, wo = (same_size(n, s) for n in (h, w))
    attention = plan_attention(spec.attention, ctx, (c_out, ho, wo))
    total = cost.conv_bn(c_in, c_out, k, (ho, wo)) + cost.conv_bn(c_out, c_out, k, (ho, wo))
    if s != 1 or c_in != c_out:
        total = total + cost.conv_bn(c_in, c_out, 1, (ho, wo))
    kwargs = {
        "in_channels": c_in,
        "out_channels": c_out,
        "stride": s,
        "kernel_size": k,
        "act": spec.act,
        "zero_init_last": spec.zero_init_last,
        "drop_path": ctx.drop_path,
        "attention": attention.recipe if attention else None,
    }
    children = [attention] if attention else []
    return make_node(ctx, "block", spec.type, (c_out, ho, wo), "archdsl.nn.basic.BasicBlock", kwargs, total, children)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": type_name(BasicBlockSpec), "repeat": 2, "attention": "se"}],
}
BLOCKS.add(Kind.of(BasicBlockSpec, _plan, example=_EXAMPLE))
