"""Shapes, costs and the planner."""

from archdsl.plan.cost import Cost
from archdsl.plan.shapes import Ctx, ModelPlan, PartPlan, Planned, Shape, StagePlan

__all__ = ["Cost", "Ctx", "ModelPlan", "PartPlan", "Planned", "Shape", "StagePlan"]
