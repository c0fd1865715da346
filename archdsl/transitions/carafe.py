"""CARAFE: content-aware up-sampling (Wang et al. 2019, arXiv:1905.02188; ``archdsl.nn.carafe.CARAFE``), the
transition of a stage with ``stride: 1/2`` or ``1/4``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import TRANSITIONS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import OddKernel, SpecModel

__all__ = ["CarafeSpec"]


class CarafeSpec(SpecModel):
    """Up-samples by sigma (the stage's stride 1/sigma) with content-predicted k_up x k_up reassembly kernels.

    Each output pixel gets a softmax-normalised kernel predicted from the input, and reassembles the
    k_up x k_up neighbourhood of its source pixel with it; a 1x1 conv then maps to the stage's channels if
    they differ."""

    type: Literal["carafe"]
    compressed_channels: int = Field(64, ge=1, le=4096)
    """C_m: channels of the channel compressor (1x1 conv) that feeds the content encoder (the paper: 64)."""
    encoder_kernel: OddKernel = 3
    """k_enc: kernel side of the content encoder conv (the paper: 3)."""
    up_kernel: OddKernel = 5
    """k_up: side of the reassembly neighbourhood, k_up^2 weights per output pixel (the paper: 5)."""


def _plan(spec: CarafeSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    s, out = ctx.upsample, ctx.out_channels
    require(
        s > 1 and ctx.stride == 1,
        ctx.path.removesuffix(".transition") + ".stride",
        f"a carafe transition up-samples, so the stage's stride must be 1/2 or 1/4, got {ctx.stride}",
    )
    k, k_enc, cm = spec.up_kernel, spec.encoder_kernel, spec.compressed_channels
    hw, up_hw = (h, w), (s * h, s * w)
    total = (
        cost.conv(c, cm, 1, hw, bias=True)  # channel compressor
        + cost.conv(cm, s * s * k * k, k_enc, hw, bias=True)  # content encoder
        + cost.matmul(c, k * k, s * s, batch=h * w)  # reassembly: per source pixel, its sigma^2 kernels
        + (cost.conv(c, out, 1, up_hw, bias=True) if out != c else cost.Cost())  # projection to the stage's channels
    )
    kwargs = {
        "in_channels": c,
        "out_channels": out,
        "scale": s,
        "compressed_channels": cm,
        "encoder_kernel": k_enc,
        "up_kernel": k,
    }
    return make_node(ctx, "transition", spec.type, (out, s * h, s * w), "archdsl.nn.carafe.CARAFE", kwargs, total)


_EXAMPLE = {
    "channels": 24,
    "stride": "1/2",
    "transition": {"type": type_name(CarafeSpec), "compressed_channels": 8, "up_kernel": 3},
    "blocks": [{"type": "basic"}],
}
TRANSITIONS.add(Kind.of(CarafeSpec, _plan, example=_EXAMPLE))
