"""LatentGNN block (Zhang et al. 2019, "LatentGNN: Learning Efficient Non-local Relations for Visual
Recognition", arXiv:1905.11634; ``archdsl.nn.latentgnn.LatentGNN``): visible -> d latent nodes, latent
propagation, latent -> visible with the same kernel, residual with a learnable scale; keeps the map."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["LatentGNNSpec"]


class LatentGNNSpec(BlockSpecBase):
    """``x + gamma * BN(W_up [psi_k z~_k]_k)``, a low-rank graph through d latent nodes per kernel."""

    type: Literal["latentgnn"]
    latent: int = Field(100, ge=1, le=4096)
    """Latent nodes d of each kernel (the paper: 100)."""
    reduction: int = Field(4, ge=1, le=1024)
    """The visible features are reduced to C / reduction channels (the authors' code: 4)."""
    kernels: int = Field(1, ge=1, le=16)
    """Low-rank kernels mixed (the paper's multi-kernel LatentGNN), each with its own d latent nodes; their
    outputs are concatenated before the output conv (the authors' code: 1)."""
    zero_init: bool = True
    """Start the residual scale gamma at 0, so the block starts as the identity (the authors' code); else 1."""


def _plan(spec: LatentGNNSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    inner = c // spec.reduction
    require(inner >= 1, ctx.path + ".reduction", f"reduction={spec.reduction} leaves no channels of {c}")
    n, d, k = h * w, spec.latent, spec.kernels
    total = (
        cost.conv(c, inner, 1, (h, w))
        + cost.batchnorm(inner)  # reduction
        + cost.conv(inner, k * d, 1, (h, w))
        + cost.batchnorm(k * d)  # the kernels psi
        + cost.matmul(d, n, inner, batch=k)  # 1: visible to latent
        + cost.matmul(d, inner, d, batch=k)  # 2: latent affinity
        + cost.matmul(d, d, inner, batch=k)  # 2: latent propagation
        + cost.matmul(inner, d, n, batch=k)  # 3: latent to visible
        + cost.conv(k * inner, c, 1, (h, w))
        + cost.batchnorm(c)  # back to C
        + cost.param(1)  # gamma
    )
    kwargs = {"channels": c, "inner": inner, "latent": d, "kernels": k, "zero_init": spec.zero_init}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.latentgnn.LatentGNN", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(LatentGNNSpec), "latent": 16, "kernels": 2, "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(LatentGNNSpec, _plan, example=_EXAMPLE))
