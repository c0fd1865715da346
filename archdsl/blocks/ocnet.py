"""Object context block (Yuan & Wang 2018, arXiv:1809.00916; ``archdsl.nn.ocnet.ObjectContextBlock``): Base-OC,
Pyramid-OC or ASP-OC, a context block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["OCNetSpec"]


class OCNetSpec(BlockSpecBase):
    """The paper's object context module fused with the input (not residual: the fused map replaces the input);
    keeps the channels and the map size."""

    type: Literal["ocnet"]
    variant: Literal["base", "pyramid", "asp"] = "base"
    """Base-OC (context + input), Pyramid-OC (context inside s x s regions for each of ``levels``) or ASP-OC
    (context branch beside a 1x1 conv and dilated 3x3 convs)."""
    key_reduction: int = Field(2, ge=1, le=1024)
    """The key (= query) transform has C / key_reduction channels (the paper: C / 2)."""
    levels: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=lambda: [1, 2, 3, 6], min_length=1, max_length=6
    )
    """Pyramid-OC: the map is split into s x s regions for each s (the paper: 1, 2, 3, 6); each s must fit
    the map (at most its height and width)."""
    dilations: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=lambda: [12, 24, 36], min_length=1, max_length=6
    )
    """ASP-OC: the dilations of its 3x3 conv branches (the paper: 12, 24, 36 at output stride 8)."""
    zero_init: bool = True
    """Start the context's output 1x1 conv at zero (the authors' code)."""


def _region_splits(size: int, s: int) -> list[tuple[int, int, int]]:
    """``archdsl.nn.ocnet.region_splits`` (kinds stay torch-free): runs ``(start, count, length)`` of a side cut
    into ``s`` pieces of ``size // s``, the last taking the rest."""
    step = size // s
    runs = [(0, s - 1, step)] if s > 1 else []
    return [*runs, ((s - 1) * step, 1, size - (s - 1) * step)]


def object_context_cost(c: int, key: int, value: int, out: int, regions: int, hw: tuple[int, int]) -> cost.Cost:
    """``archdsl.nn.ocnet.ObjectContext`` on an ``hw`` map."""
    total = cost.conv(c, key, 1, hw, bias=True) + cost.batchnorm(key) + cost.conv(c, value, 1, hw, bias=True)
    for _, nr, lr in _region_splits(hw[0], regions):
        for _, nc, lc in _region_splits(hw[1], regions):
            n = lr * lc
            total = total + cost.matmul(n, key, n, batch=nr * nc) + cost.matmul(n, n, value, batch=nr * nc)
    return total + cost.conv(value, out, 1, hw, bias=True)


def _plan(spec: OCNetSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    hw = (h, w)
    key = c // spec.key_reduction
    require(key >= 1, ctx.path + ".key_reduction", f"key_reduction={spec.key_reduction} leaves no channels of {c}")
    if spec.variant == "base":
        require(c // 2 >= 1, ctx.path, f"Base-OC needs value channels C / 2 >= 1, got C={c}")
        total = object_context_cost(c, key, c // 2, c, 1, hw) + cost.conv(2 * c, c, 1, hw, bias=True)
        total = total + cost.batchnorm(c)
    elif spec.variant == "pyramid":
        for s in spec.levels:
            require(
                s <= h and s <= w,
                ctx.path + ".levels",
                f"pyramid level {s} splits the map into {s}x{s} regions, more than the {h}x{w} map has",
            )
        n = len(spec.levels)
        total = cost.conv(c, n * c, 1, hw, bias=True) + cost.batchnorm(n * c)
        for s in spec.levels:
            total = total + object_context_cost(c, key, c, c, s, hw)
        total = total + cost.conv(2 * n * c, c, 1, hw, bias=True) + cost.batchnorm(c)
    else:
        total = cost.conv(c, c, 3, hw, bias=True) + cost.batchnorm(c) + object_context_cost(c, key, c, c, 1, hw)
        total = total + cost.conv(c, c, 1, hw, bias=True) + cost.batchnorm(c) + cost.conv_bn(c, c, 1, hw)
        total = total + cost.conv_bn(c, c, 3, hw) * len(spec.dilations)
        total = total + cost.conv_bn((2 + len(spec.dilations)) * c, c, 1, hw)
    kwargs = {
        "channels": c,
        "key": key,
        "variant": spec.variant,
        "levels": list(spec.levels),
        "dilations": list(spec.dilations),
        "zero_init": spec.zero_init,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.ocnet.ObjectContextBlock", kwargs, total)


_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(OCNetSpec), "variant": "pyramid", "zero_init": False},
        {"type": type_name(OCNetSpec), "variant": "asp", "dilations": [2, 4, 6], "zero_init": False},
    ],
}
BLOCKS.add(Kind.of(OCNetSpec, _plan, example=_EXAMPLE))
