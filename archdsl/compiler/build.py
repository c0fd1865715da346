"""Spec -> plan -> ``nn.Module``: each planned part is built by its registered builder."""

from __future__ import annotations

import torch
from torch import nn

from archdsl.compiler.backbone import Backbone
from archdsl.plan.planner import plan_model
from archdsl.plan.shapes import ModelPlan, PartPlan
from archdsl.spec.model import ModelSpec

__all__ = ["build_from_plan", "build_model"]


def build_model(spec: ModelSpec, device: torch.device | str | None = None) -> Backbone:
    """Plan ``spec`` (shape errors are raised before any weight exists), then build it on ``device``.

    ``device="meta"`` allocates nothing, for free parameter and FLOP counts.
    """
    return build_from_plan(plan_model(spec), device)


def _build(part: PartPlan) -> nn.Module:
    assert part.build is not None and part.ctx is not None  # set by the planner for every part
    return part.build(part.spec, part.ctx)


def build_from_plan(plan: ModelPlan, device: torch.device | str | None = None) -> Backbone:
    with torch.device(device if device is not None else torch.get_default_device()):
        stem = _build(plan.stem)
        stages = [nn.Sequential(*(_build(p) for p in stage.parts)) for stage in plan.stages]
        head = _build(plan.head)
        return Backbone(stem, stages, head)
