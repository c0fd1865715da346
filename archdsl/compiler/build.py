"""Spec -> plan -> ``nn.Module``: the plan's recipe, instantiated on a device."""

from __future__ import annotations

import torch

from archdsl.compiler.instantiate import instantiate
from archdsl.nn.backbone import Backbone
from archdsl.plan.shapes import ModelPlan
from archdsl.planner import plan_model
from archdsl.spec.model import ModelSpec

__all__ = ["build_from_plan", "build_model"]


def build_model(spec: ModelSpec, device: torch.device | str | None = None) -> Backbone:
    """Plan ``spec`` (shape errors are raised before any weight exists), then build it on ``device``.

    ``device="meta"`` allocates nothing, for free parameter and FLOP counts.
    """
    return build_from_plan(plan_model(spec), device)


def build_from_plan(plan: ModelPlan, device: torch.device | str | None = None) -> Backbone:
    with torch.device(device if device is not None else torch.get_default_device()):
        model = instantiate(plan.recipe)
    assert isinstance(model, Backbone)
    return model
