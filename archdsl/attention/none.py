"""``attention: none``: no attention module (so a search can choose "none" beside "se", "eca", ...)."""

from __future__ import annotations

from typing import Literal

from archdsl.kinds import ATTENTION, Kind
from archdsl.plan.shapes import Ctx, Node
from archdsl.spec.base import SpecModel

__all__ = ["NoAttentionSpec"]


class NoAttentionSpec(SpecModel):
    """No attention (MBConv: not even its default SE)."""

    type: Literal["none"]


def _plan(spec: NoAttentionSpec, ctx: Ctx) -> Node:
    raise AssertionError("attention 'none' plans to no node; plan_attention skips it")


ATTENTION.add(Kind.of(NoAttentionSpec, _plan))
