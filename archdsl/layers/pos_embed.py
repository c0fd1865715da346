"""Learned absolute position embedding added to a (B, C, H, W) map."""

from __future__ import annotations

import torch
from torch import nn

from archdsl.plan.cost import param
from archdsl.plan.kind import Kind
from archdsl.plan.shapes import Ctx, Planned

__all__ = ["POS_EMBED", "PositionEmbedding"]


class PositionEmbedding(nn.Module):
    """``x + pos`` with a learned ``pos`` of shape (1, C, H, W), truncated-normal initialised."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, channels, height, width))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos


def _plan(spec: None, ctx: Ctx) -> Planned:
    return Planned(ctx.in_shape, param(*ctx.in_shape))


def _build(spec: None, ctx: Ctx) -> nn.Module:
    c, h, w = ctx.in_shape
    return PositionEmbedding(c, h, w)


POS_EMBED: Kind[None] = Kind("pos_embed", type(None), _plan, _build)
