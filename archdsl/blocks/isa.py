"""Interlaced sparse self-attention block (Huang et al. 2019, arXiv:1907.12273;
``archdsl.nn.isa.InterlacedSparseAttention``): a context block that keeps the map, placed between the conv
blocks of a stage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["ISASpec"]


class ISASpec(BlockSpecBase):
    """Long-range attention among the positions with the same offset inside P_h x P_w blocks, then short-range
    attention inside each block, concatenated with the input and fused by a 1x1 conv + BN + ReLU (the paper's
    fusion, not an additive residual); keeps the channels and the map size."""

    type: Literal["isa"]
    block_size: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=lambda: [8, 8], min_length=2, max_length=2
    )
    """[P_h, P_w]: the block size; a map that is not a multiple of it is zero-padded on both sides, and the
    padding cropped off after the attention (the paper: 8 x 8 at output stride 8)."""
    key_reduction: int = Field(2, ge=1, le=1024)
    """The query and key transforms have C / key_reduction channels (the paper: C / 2); values keep C."""


def _attention_cost(c: int, key: int, padded: tuple[int, int], groups: int, members: int) -> cost.Cost:
    """``archdsl.nn.isa.SelfAttention2d`` on the padded map, ``groups`` groups of ``members`` positions."""
    proj = (cost.conv(c, key, 1, padded) + cost.batchnorm(key)) * 2 + cost.conv(c, c, 1, padded)
    attn = cost.matmul(members, key, members, batch=groups) + cost.matmul(members, members, c, batch=groups)
    return proj + attn + cost.conv(c, c, 1, padded) + cost.batchnorm(c)


def _plan(spec: ISASpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    key = c // spec.key_reduction
    require(key >= 1, ctx.path + ".key_reduction", f"key_reduction={spec.key_reduction} leaves no key channels of {c}")
    ph, pw = spec.block_size
    qh, qw = -(-h // ph), -(-w // pw)
    padded = (qh * ph, qw * pw)
    total = (
        _attention_cost(c, key, padded, ph * pw, qh * qw)  # long range
        + _attention_cost(c, key, padded, qh * qw, ph * pw)  # short range
        + cost.conv(2 * c, c, 1, (h, w))
        + cost.batchnorm(c)
    )
    kwargs = {"channels": c, "key": key, "block": [ph, pw]}
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.isa.InterlacedSparseAttention", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [{"type": "bottleneck", "width": 8}, {"type": type_name(ISASpec), "block_size": [4, 3]}],
}
BLOCKS.add(Kind.of(ISASpec, _plan, example=_EXAMPLE))
