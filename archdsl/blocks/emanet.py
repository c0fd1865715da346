"""EM attention unit (Li et al. 2019, arXiv:1907.13426; ``archdsl.nn.emanet.EMAUnit``): a residual context
block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require_context_block, require_divisible
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["EMANetSpec"]


class EMANetSpec(BlockSpecBase):
    """``ReLU(x + BN(W ReLU(mu z^T)))`` after T EM iterations over K bases; keeps the channels and the map size."""

    type: Literal["emanet"]
    bases: int = Field(64, ge=1, le=1024)
    """Number K of bases mu (the paper: 64)."""
    iterations: int = Field(3, ge=1, le=16)
    """Number T of E-step / M-step iterations (the paper: 3)."""
    momentum: float = Field(0.9, ge=0.0, le=1.0)
    """Weight of the stored bases in their moving-average update in training,
    ``mu <- momentum * mu + (1 - momentum) * mean_batch(mu^(T))`` (the paper: 0.9; 1 freezes them)."""
    reduction: int = Field(1, ge=1, le=1024)
    """The EM iterations run on C / reduction channels (the paper's EMAU keeps C: 1)."""
    stop_gradient: bool = False
    """Cut the gradient through the EM iterations, as the authors' code does (the input conv then gets none)."""


def _plan(spec: EMANetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    require_divisible(c, spec.reduction, ctx.path + ".reduction", "the block's channels", "reduction")
    inner = c // spec.reduction
    n, k = h * w, spec.bases
    em = (cost.matmul(n, inner, k) + cost.matmul(inner, n, k)) * spec.iterations  # E-step x^T mu, M-step x z
    total = (
        cost.conv(c, inner, 1, (h, w), bias=True)
        + em
        + cost.matmul(inner, k, n)  # reconstruction mu z^T
        + cost.conv(inner, c, 1, (h, w))
        + cost.batchnorm(c)
    )  # the bases are a buffer: no parameters
    kwargs = {
        "channels": c,
        "inner": inner,
        "bases": k,
        "iterations": spec.iterations,
        "momentum": spec.momentum,
        "stop_gradient": spec.stop_gradient,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.emanet.EMAUnit", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(EMANetSpec), "bases": 16}],
}
BLOCKS.add(Kind.of(EMANetSpec, _plan, example=_EXAMPLE))
