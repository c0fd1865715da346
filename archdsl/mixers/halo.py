"""Scaling Local Self-Attention for Parameter Efficient Visual Backbones (Vaswani et al. 2021,
arXiv:2103.12731): blocked local self-attention with halos, the spatial mixer of HaloNet
(``archdsl.nn.halo.HaloAttention``; the module's docstring gives the arithmetic)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import MIXERS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.layout import declare_layout
from archdsl.plan.rules import require
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import SpecModel

__all__ = ["HaloMixerSpec"]


class HaloMixerSpec(SpecModel):
    """Blocked local self-attention with halos; stride 2 subsamples the queries."""

    type: Literal["halo"]
    block_size: int = Field(ge=1, le=64)
    """b: side of the non-overlapping query blocks; must divide the feature map."""
    halo_size: int = Field(ge=0, le=32)
    """h: extra pixels on every side of a block's key/value window ((b+2h)^2 keys)."""
    num_heads: int = Field(8, ge=1)
    """Attention heads; must divide w and r_v*w."""
    value_ratio: float = Field(1.0, gt=0.0, le=16.0)
    """r_v: value (and output) width is r_v*w, an integer."""
    compat: Literal["paper", "timm"] = "paper"
    """Whose arithmetic: ``paper`` (the default: keys in the zero padding are masked, relative offsets are
    between full-resolution pixels, the 1/sqrt(d) scale covers the position logits), or ``timm``, which computes
    ``timm.layers.HaloAttn`` with the defaults of timm's HaloNets: padded keys are attended as zeros, a key's
    offset is counted from the query's index in its subsampled block (at stride 1 a shift by h; at stride 2 not
    a pixel offset), position logits unscaled. Loading timm's HaloNet weights needs ``timm``. One switch, not
    three: no published model mixes them, and only the three together reproduce timm's function (the module's
    ``archdsl.nn.halo.CONVENTIONS``). Same parameters and FLOPs either way."""


def _plan(spec: HaloMixerSpec, ctx: Ctx) -> Node:
    w, hh, ww = ctx.in_shape
    s, b, h, n = ctx.stride, spec.block_size, spec.halo_size, spec.num_heads
    require(s in (1, 2), ctx.path, f"halo attention applies stride 1 or 2, the stage asks for {s}")
    require(
        b % s == 0,
        ctx.path + ".block_size",
        f"block_size={b} must be divisible by the stride {s} (queries are subsampled per block)",
    )
    require(
        hh % b == 0 and ww % b == 0, ctx.path, f"feature map {hh}x{ww} is not divisible by block_size={b}{ctx.where()}"
    )
    require(
        h < min(hh, ww),
        ctx.path + ".halo_size",
        f"halo_size={h} reaches past the whole {hh}x{ww} feature map (a {b + 2 * h}x{b + 2 * h} window of "
        f"mostly padding); use at most {min(hh, ww) - 1}{ctx.where()}",
    )
    vw_exact = spec.value_ratio * w
    require(
        abs(vw_exact - round(vw_exact)) < 1e-9 and round(vw_exact) >= 1,
        ctx.path + ".value_ratio",
        f"value width value_ratio*w must be a positive integer, got {spec.value_ratio}*{w}={vw_exact:g}",
    )
    vw = round(vw_exact)
    require(w % n == 0, ctx.path + ".num_heads", f"num_heads={n} must divide the bottleneck width w={w}")
    require(vw % n == 0, ctx.path + ".num_heads", f"num_heads={n} must divide the value width r_v*w={vw}")
    kwargs: dict[str, int | str] = {
        "channels": w,
        "value_channels": vw,
        "height": hh,
        "width": ww,
        "block_size": b,
        "halo_size": h,
        "num_heads": n,
        "stride": s,
    }
    if spec.compat != "paper":  # the default stays out of the recipe: existing plans are unchanged
        kwargs["compat"] = spec.compat
    ho, wo = hh // s, ww // s
    dq, dv = w // n, vw // n
    blocks, win, nq = (hh // b) * (ww // b), b + 2 * h, (b // s) ** 2
    c = cost.conv(w, w, 1, (ho, wo)) + cost.conv(w, w + vw, 1, (hh, ww))
    c = c + cost.relpos(dq, (win, win), n * blocks * nq, (win, win))
    c = c + cost.matmul(nq, dq, win * win, n * blocks) + cost.matmul(nq, win * win, dv, n * blocks)
    return make_node(ctx, "mixer", spec.type, (vw, ho, wo), "archdsl.nn.halo.HaloAttention", kwargs, c)


_EXAMPLE = {"type": type_name(HaloMixerSpec), "block_size": 4, "halo_size": 1, "num_heads": 2, "value_ratio": 2.0}
MIXERS.add(Kind.of(HaloMixerSpec, _plan, example=_EXAMPLE, layout="nchw"))
# NCHW for the CPU path, which reshapes the NCHW memory into blocks and heads; on CUDA the fused path copies its
# operands into the kernel's layout from NCHW and channels-last maps alike (archdsl.nn.relpos)
declare_layout("mixer", type_name(HaloMixerSpec), "any", device="cuda")
