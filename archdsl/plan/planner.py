"""Plan every feature-map shape and the analytic cost of a spec, before any weight exists."""

from __future__ import annotations

from typing import Any

from archdsl.errors import ArchDSLError, ShapeError
from archdsl.plan.kind import BLOCKS, HEADS, STEMS, TRANSITIONS, Kind
from archdsl.plan.shapes import Ctx, ModelPlan, PartPlan, Shape, StagePlan
from archdsl.spec.model import ModelSpec

__all__ = ["plan_model"]


def plan_model(spec: ModelSpec) -> ModelPlan:
    """The shape and cost of every part; a broken shape rule raises a located :class:`ShapeError`."""
    try:
        return _plan(spec)
    except ArchDSLError as err:
        source = spec._source
        if source is None:
            raise
        raise err.located(source.locate) from None


def _part(kind: Kind[Any], part_spec: Any, ctx: Ctx) -> PartPlan:
    planned = kind.plan(part_spec, ctx)
    return PartPlan(
        path=ctx.path,
        type=kind.name,
        in_shape=ctx.in_shape,
        out_shape=planned.out_shape,
        params=planned.cost.params,
        flops=planned.cost.flops,
        spec=part_spec,
        ctx=ctx,
        build=kind.build,
    )


def _plan(spec: ModelSpec) -> ModelPlan:
    from archdsl.layers.pos_embed import POS_EMBED  # the one non-registry part

    size = spec.input.size
    shape: Shape = (spec.input.channels, size, size)
    stem = _part(STEMS.get(spec.stem.type), spec.stem, Ctx(shape, "stem", input_size=size))
    shape = stem.out_shape
    total_depth = sum(b.repeat for s in spec.stages for b in s.blocks)
    stages = []
    depth = 0
    for i, stage in enumerate(spec.stages):
        stage_in = shape
        parts: list[PartPlan] = []
        stride = stage.stride

        if stage.transition is not None:
            t = stage.transition
            tctx = _ctx(shape, f"stages.{i}.transition", stage.channels, stride, size)
            parts.append(_part(TRANSITIONS.get(t.type), t, tctx))
            shape, stride = parts[-1].out_shape, 1
        if stage.pos_embed:
            parts.append(_part(POS_EMBED, None, _ctx(shape, f"stages.{i}.pos_embed", stage.channels, 1, size)))
        for j, block in enumerate(stage.blocks):
            for r in range(block.repeat):
                drop = _drop_rate(spec, depth, total_depth)
                bctx = _ctx(shape, f"stages.{i}.blocks.{j}", stage.channels, stride, size, r, drop)
                parts.append(_part(BLOCKS.get(block.type), block, bctx))
                shape, stride, depth = parts[-1].out_shape, 1, depth + 1
        if shape[0] != stage.channels:
            raise ShapeError.at(
                f"stages.{i}.channels",
                f"the stage's blocks end with {shape[0]} channels but the stage declares {stage.channels}",
            )
        stages.append(StagePlan(i, stage_in, shape, tuple(parts)))
    head = _part(HEADS.get(spec.head.type), spec.head, Ctx(shape, "head", input_size=size))
    return ModelPlan(spec.name, (spec.input.channels, size, size), stem, tuple(stages), head, head.out_shape)


def _ctx(shape: Shape, path: str, channels: int, stride: int, size: int, repeat: int = 0, drop: float = 0.0) -> Ctx:
    return Ctx(shape, path, channels, stride, repeat, size, _total_stride(size, shape), drop)


def _total_stride(size: int, shape: Shape) -> int:
    return max(1, round(size / shape[-1])) if len(shape) == 3 else 1


def _drop_rate(spec: ModelSpec, depth: int, total: int) -> float:
    return spec.train.drop_path_rate * depth / max(1, total - 1)
