"""Pooled classifier head: ``[1x1 conv -> BN -> act to d_f] -> global average pool -> [dropout] -> fc``."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from archdsl.layers.act import ActName
from archdsl.layers.conv_bn import ConvBN, conv_bn_cost
from archdsl.plan.cost import Cost, linear
from archdsl.plan.kind import HEADS, Kind
from archdsl.plan.shapes import Ctx, Planned
from archdsl.spec.base import SpecModel

__all__ = ["ClassifierHead", "ClassifierSpec"]


class ClassifierSpec(SpecModel):
    """Global-average-pooled linear classifier, optionally after a final 1x1 conv (HaloNet's d_f)."""

    type: Literal["classifier"]
    num_classes: int = Field(gt=0)
    """Number of classes."""
    final_channels: int | None = Field(None, gt=0)
    """d_f: a 1x1 conv + BN + act to this width before pooling."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout before the fc layer."""
    act: ActName = "relu"
    """Activation of the final conv."""


class ClassifierHead(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, final_channels: int | None, dropout: float, act: str
    ) -> None:
        super().__init__()
        self.final = ConvBN(in_channels, final_channels, 1, act=act) if final_channels else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(final_channels or in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(x).mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        return self.fc(self.dropout(x))


def _plan(spec: ClassifierSpec, ctx: Ctx) -> Planned:
    c, h, w = ctx.in_shape
    cost = Cost()
    if spec.final_channels:
        cost = conv_bn_cost(c, spec.final_channels, 1, (h, w))
        c = spec.final_channels
    return Planned((spec.num_classes,), cost + linear(c, spec.num_classes, 1))


def _build(spec: ClassifierSpec, ctx: Ctx) -> nn.Module:
    return ClassifierHead(ctx.in_shape[0], spec.num_classes, spec.final_channels, spec.dropout, spec.act)


_EXAMPLE = {"type": "classifier", "num_classes": 7, "final_channels": 24, "dropout": 0.1}
HEADS.register("classifier", Kind("classifier", ClassifierSpec, _plan, _build, example=_EXAMPLE))
