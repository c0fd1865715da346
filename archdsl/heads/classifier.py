"""Pooled classifier head: ``[1x1 conv -> BN -> act to d_f] -> global average pool -> [dropout] -> fc``
(``archdsl.nn.classifier.ClassifierHead``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import HEADS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import ActName, SpecModel

__all__ = ["ClassifierSpec"]


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


def _plan(spec: ClassifierSpec, ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    total = cost.Cost()
    if spec.final_channels:
        total = cost.conv_bn(c, spec.final_channels, 1, (h, w))
    total = total + cost.linear(spec.final_channels or c, spec.num_classes, 1)
    kwargs = {
        "in_channels": c,
        "num_classes": spec.num_classes,
        "final_channels": spec.final_channels,
        "dropout": spec.dropout,
        "act": spec.act,
    }
    return make_node(ctx, "head", spec.type, (spec.num_classes,), "archdsl.nn.classifier.ClassifierHead", kwargs, total)


_EXAMPLE = {"type": type_name(ClassifierSpec), "num_classes": 7, "final_channels": 24, "dropout": 0.1}
HEADS.add(Kind.of(ClassifierSpec, _plan, example=_EXAMPLE))
