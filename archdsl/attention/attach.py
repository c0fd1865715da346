"""Attention attached to a block: the ``attention:`` field of conv blocks and its child node.

``attention: se`` is short for ``attention: {type: se}``, and ``attention: none`` (``{type: none}``) is no
attention, so a search can choose among them (``stages.*.blocks.*.attention: {choice: [none, se, eca, cbam]}``).
Each block documents where its attention sits; a missing field means the block's default (none, except
MBConv's SE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

from pydantic import BeforeValidator

from archdsl.attention.none import NoAttentionSpec
from archdsl.kinds import ATTENTION
from archdsl.plan.shapes import Ctx, Node, Shape

__all__ = ["Attached", "attention_shorthand", "plan_attention"]

if TYPE_CHECKING:
    AttentionSpec = Any


def attention_shorthand(value: Any) -> Any:
    """``"se"`` -> ``{"type": "se"}``; mappings and null unchanged."""
    if isinstance(value, str):
        return {"type": value}
    return value


Attached = Annotated[Optional["AttentionSpec"], BeforeValidator(attention_shorthand)]
"""The type of a block's ``attention`` field (the union of registered attention kinds, or none)."""


def plan_attention(spec: Any, ctx: Ctx, shape: Shape) -> Node | None:
    """The attention module on a ``shape`` map inside the block of ``ctx`` (path ``<block>.attention``)."""
    if spec is None or isinstance(spec, NoAttentionSpec):
        return None
    return ATTENTION.get(spec.type).plan(spec, ctx.child("attention", shape, out_channels=shape[0], stride=1))
