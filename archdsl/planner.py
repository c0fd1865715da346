"""Plan every feature-map shape, the analytic cost and the recipe of every part, before any weight exists."""

from __future__ import annotations

import math
from dataclasses import dataclass

from archdsl.errors import ArchDSLError, ShapeError
from archdsl.kinds import BLOCKS, HEADS, STEMS, TRANSITIONS
from archdsl.limits import ACTIVATION_BYTES, PARAMS
from archdsl.plan import cost
from archdsl.plan.shapes import Ctx, ModelPlan, Node, Shape, StagePlan, make_node, stride_at
from archdsl.spec.model import ModelSpec

__all__ = ["PlannedSpec", "plan_model", "plan_spec"]


@dataclass(frozen=True)
class PlannedSpec:
    """A spec and its plan, planned once and handed on (to training, latency, export)."""

    spec: ModelSpec
    plan: ModelPlan


def plan_spec(spec: ModelSpec) -> PlannedSpec:
    """Plan ``spec`` (:func:`plan_model`) and keep the two together."""
    return PlannedSpec(spec, plan_model(spec))


def plan_model(spec: ModelSpec) -> ModelPlan:
    """The plan tree of ``spec``; a broken shape rule raises a :class:`ShapeError` located in its file."""
    try:
        return _bounded(_plan(spec), spec.train.batch_size if spec.train is not None else 1)
    except ArchDSLError as err:
        if spec.source is None:
            raise
        raise err.located(spec.source.locate) from None


def _bounded(plan: ModelPlan, batch: int) -> ModelPlan:
    """Refuse a model too large to allocate or to train, at the part holding most of its parameters or its
    largest output, before any weight exists (``channels: 1000000000000`` or ``size: 1000000`` plan in
    microseconds and would fail only at allocation)."""
    parts = plan.parts()
    if plan.params > PARAMS.value:
        big = max(parts, key=lambda n: n.params)
        raise ShapeError.at(big.path, f"the model has {PARAMS.over(plan.params)}; {big.params:,} of them are here")
    outputs = [math.prod(n.out_shape) for n in parts]
    activations = 4 * batch * (math.prod(plan.input) + sum(outputs))
    if activations > ACTIVATION_BYTES.value:
        big = parts[outputs.index(max(outputs))]
        raise ShapeError.at(
            big.path,
            f"one training step at batch {batch} keeps float32 activations of at least "
            f"{ACTIVATION_BYTES.over(activations)}; this part's output is "
            f"{'x'.join(map(str, big.out_shape))} per image",
        )
    return plan


def _pos_embed(ctx: Ctx) -> Node:
    c, h, w = ctx.in_shape
    return make_node(
        ctx,
        "pos_embed",
        "pos_embed",
        ctx.in_shape,
        "archdsl.nn.pos_embed.PositionEmbedding",
        {"channels": c, "height": h, "width": w},
        cost.param(c, h, w),
    )


def _plan(spec: ModelSpec) -> ModelPlan:
    size = spec.input.size
    shape: Shape = (spec.input.channels, size, size)

    def ctx(path: str, channels: int = 0, stride: int = 1, repeat: int = 0, drop: float = 0.0, up: int = 1) -> Ctx:
        in_stride = stride_at(size, shape[-1]) if len(shape) == 3 else 1
        return Ctx(shape, path, channels, stride, repeat, size, in_stride, drop, up)

    stem = STEMS.get(spec.stem.type).plan(spec.stem, ctx("stem"))
    shape = stem.out_shape
    total_depth = sum(b.repeat for s in spec.stages for b in s.blocks)
    stages = []
    depth = 0
    for i, stage in enumerate(spec.stages):
        stage_in = shape
        parts: list[Node] = []
        stride, up = stage.downsample, stage.upsample
        if stage.transition is not None:
            t = stage.transition
            parts.append(TRANSITIONS.get(t.type).plan(t, ctx(f"stages.{i}.transition", stage.channels, stride, up=up)))
            _check_upsampled(i, stage.stride, up, shape, parts[-1])
            shape, stride = parts[-1].out_shape, 1
        elif up > 1:
            raise ShapeError.at(
                f"stages.{i}.stride",
                f"stride {stage.stride} up-samples the map, which only a transition that up-samples can apply "
                "(e.g. `transition: {type: carafe}`); the stage has no transition",
            )
        if stage.pos_embed:
            parts.append(_pos_embed(ctx(f"stages.{i}.pos_embed", stage.channels)))
        for j, block in enumerate(stage.blocks):
            kind = BLOCKS.get(block.type)
            for r in range(block.repeat):
                drop = spec.train.drop_path_rate * depth / max(1, total_depth - 1)
                parts.append(kind.plan(block, ctx(f"stages.{i}.blocks.{j}", stage.channels, stride, r, drop)))
                shape, stride, depth = parts[-1].out_shape, 1, depth + 1
        if shape[0] != stage.channels:
            raise ShapeError.at(
                f"stages.{i}.channels",
                f"the stage's blocks end with {shape[0]} channels but the stage declares {stage.channels}",
            )
        stages.append(StagePlan(i, stage_in, shape, tuple(parts)))
    head = HEADS.get(spec.head.type).plan(spec.head, ctx("head"))
    return ModelPlan(spec.name, (spec.input.channels, size, size), stem, tuple(stages), head, head.out_shape)


def _check_upsampled(i: int, stride: int | str, up: int, before: Shape, transition: Node) -> None:
    """An up-sampling stage's transition must have made the map ``up`` times larger (a transition kind that
    only down-samples ignores ``Ctx.upsample``, so its output says whether it applied it)."""
    _, h, w = before
    got = transition.out_shape[1:]
    if up > 1 and got != (h * up, w * up):
        raise ShapeError.at(
            f"stages.{i}.stride",
            f"stride {stride} up-samples the {h}x{w} map to {h * up}x{w * up}, which only a transition that "
            f"up-samples can apply (e.g. `transition: {{type: carafe}}`); {transition.type} gives "
            f"{'x'.join(map(str, got))}",
        )
