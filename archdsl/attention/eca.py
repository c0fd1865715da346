"""ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks (Wang et al. 2020,
arXiv:1910.03151) as attached attention (``archdsl.nn.eca.EfficientChannelAttention``).

The kernel size is the paper's adaptive ``k = |(log2(C) + b) / gamma|_odd`` (eq. 12: the integer part, made
odd by adding one; gamma = 2, b = 1) unless ``kernel_size`` fixes it.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from archdsl.kinds import ATTENTION, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["ECASpec", "eca_kernel"]


class ECASpec(SpecModel):
    """Channel gates from a k-tap 1-D convolution across the globally pooled channels."""

    type: Literal["eca"]
    kernel_size: OddKernel | None = None
    """k (odd); default: adaptive to the channels."""
    gamma: float = Field(2.0, gt=0.0)
    """gamma of the adaptive kernel size."""
    beta: float = Field(1.0, ge=0.0)
    """b of the adaptive kernel size."""


def eca_kernel(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


def _plan(spec: ECASpec, ctx: Ctx) -> Node:
    c = ctx.in_shape[0]
    k = spec.kernel_size or eca_kernel(c, spec.gamma, spec.beta)
    flops = cost.Cost(k, 2 * k * c)  # one k-tap filter over C positions
    return make_node(
        ctx, "attention", spec.type, ctx.in_shape, "archdsl.nn.eca.EfficientChannelAttention", {"kernel_size": k}, flops
    )


ATTENTION.add(Kind.of(ECASpec, _plan, example={"type": type_name(ECASpec)}))
