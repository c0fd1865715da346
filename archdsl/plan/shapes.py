"""The plan: a tree of plain data, one node per part, each with its shapes, its cost and its recipe.

A :class:`Node` says where a part is (its spec ``path``), what it is (``role`` and ``type``), its input and
output shapes, its parameters and FLOPs (its children's included) and the :class:`~archdsl.plan.recipe.Recipe`
that builds it; nested parts (a bottleneck's mixer, an attached attention module) are child nodes, and their
recipes are arguments of the parent's recipe. :class:`ModelPlan` is the whole model, whose :attr:`recipe`
builds a :class:`archdsl.nn.backbone.Backbone`. Everything round-trips through JSON (``to_data`` /
``from_data``); nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from archdsl.plan.cost import Cost
from archdsl.plan.layout import channels_last as device_channels_last
from archdsl.plan.recipe import Recipe

__all__ = ["Ctx", "ModelPlan", "Node", "Shape", "StagePlan", "make_node", "stride_at"]

Shape = tuple[int, ...]
"""(C, H, W) at block boundaries; (num_classes,) after the head."""


def stride_at(size: int, side: int) -> int | Fraction:
    """The model's total stride where its ``size`` px input has become a map ``side`` wide: ``size / side``
    rounded (at least 1), or ``1/k`` where up-sampling stages made the map k times wider than the input."""
    if side > size and round(side / size) > 1:
        return Fraction(1, round(side / size))
    return max(1, round(size / side))


@dataclass(frozen=True)
class Ctx:
    """What a part's shape rule knows besides its spec."""

    in_shape: Shape
    """Input (C, H, W)."""
    path: str
    """Dotted spec path of the part, e.g. ``stages.1.blocks.0``."""
    out_channels: int = 0
    """The stage's output channels (blocks and transitions); 0 where it does not apply."""
    stride: int = 1
    """Spatial stride this part must apply (1 in an up-sampling stage, whose transition sees ``upsample``)."""
    repeat: int = 0
    """0-based repeat index of a block entry."""
    input_size: int = 0
    """The model's input size in pixels, for messages."""
    in_stride: int | Fraction = 1
    """Total stride of the model at this part's input, for messages (``1/2`` past an up-sampling stage)."""
    drop_path: float = 0.0
    """Stochastic-depth probability of this block's residual branch."""
    upsample: int = 1
    """Up-sampling factor k this part must apply: the transition of a stage with ``stride: 1/k``."""

    def where(self) -> str:
        """`` (input 600 px, stride 8)`` for messages."""
        return f" (input {self.input_size} px, stride {self.in_stride})" if self.input_size else ""

    def child(self, name: str, in_shape: Shape, **changes: Any) -> Ctx:
        """The context of a nested part (``path`` + ``.name``), e.g. a block's mixer."""
        return replace(self, path=f"{self.path}.{name}", in_shape=in_shape, **changes)


@dataclass(frozen=True)
class Node:
    """One planned part."""

    path: str
    """Where the part is written in the spec (``stages.1.blocks.0``, ``stages.1.blocks.0.mixer``)."""
    role: str
    """``stem``, ``transition``, ``pos_embed``, ``block``, ``mixer``, ``attention`` or ``head``."""
    type: str
    """The kind's name, the spec's ``type`` (``bottleneck``, ``halo``, ...)."""
    in_shape: Shape
    """Input shape, without the batch dimension."""
    out_shape: Shape
    """Output shape, without the batch dimension."""
    params: int
    """Parameters of the part, its children's included."""
    flops: int
    """Forward FLOPs at batch 1 (2 x multiply-adds), its children's included."""
    recipe: Recipe
    """The module that builds the part and its keyword arguments."""
    children: tuple[Node, ...] = ()
    """Nested parts (a bottleneck's mixer, an attached attention module); their recipes are this one's arguments."""
    repeat: int = 0
    """0-based repeat index within its block entry."""

    @property
    def label(self) -> str:
        """The spec path, with ``#k`` for the k-th repeat of a block entry."""
        return f"{self.path}#{self.repeat}" if self.repeat else self.path

    def walk(self) -> Iterator[Node]:
        """This node and every node inside it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "repeat": self.repeat,
            "role": self.role,
            "type": self.type,
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
            "params": self.params,
            "flops": self.flops,
            "recipe": self.recipe.to_data(),
            "children": [c.to_data() for c in self.children],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Node:
        return cls(
            path=data["path"],
            role=data["role"],
            type=data["type"],
            in_shape=tuple(data["in_shape"]),
            out_shape=tuple(data["out_shape"]),
            params=int(data["params"]),
            flops=int(data["flops"]),
            recipe=Recipe.from_data(data["recipe"]),
            children=tuple(cls.from_data(c) for c in data["children"]),
            repeat=int(data["repeat"]),
        )


def make_node(
    ctx: Ctx,
    role: str,
    type: str,
    out_shape: Shape,
    target: str,
    kwargs: Mapping[str, Any],
    cost: Cost,
    children: Sequence[Node] = (),
) -> Node:
    """A node whose ``cost`` covers the part's own layers; the children's costs are added."""
    params = cost.params + sum(c.params for c in children)
    flops = cost.flops + sum(c.flops for c in children)
    return Node(
        ctx.path,
        role,
        type,
        ctx.in_shape,
        out_shape,
        params,
        flops,
        Recipe(target, kwargs),
        tuple(children),
        ctx.repeat,
    )


@dataclass(frozen=True)
class StagePlan:
    """One stage: its parts in order (transition, position embedding, every repeat of every block)."""

    index: int
    """0-based, as in spec paths (``stages.0`` is the first stage)."""
    in_shape: Shape
    out_shape: Shape
    parts: tuple[Node, ...]

    @property
    def params(self) -> int:
        """Parameters of the stage's parts."""
        return sum(p.params for p in self.parts)

    @property
    def flops(self) -> int:
        """Forward FLOPs at batch 1 of the stage's parts."""
        return sum(p.flops for p in self.parts)


STAGE = "archdsl.nn.stage.Stage"
BACKBONE = "archdsl.nn.backbone.Backbone"


@dataclass(frozen=True)
class ModelPlan:
    """The whole model planned: stem, stages and head, with shapes, costs and recipes; what
    :func:`archdsl.plan_model` returns."""

    name: str
    """The spec's ``name``."""
    input: Shape
    """(C, H, W) of one input image."""
    stem: Node
    stages: tuple[StagePlan, ...]
    head: Node
    output: Shape = field(default=())
    """The head's output shape, ``(num_classes,)``."""

    @property
    def params(self) -> int:
        """Parameters of the whole model, equal to the built model's."""
        return self.stem.params + sum(s.params for s in self.stages) + self.head.params

    @property
    def flops(self) -> int:
        """Forward FLOPs at batch 1 of the whole model (2 x multiply-adds of convolutions and matrix products)."""
        return self.stem.flops + sum(s.flops for s in self.stages) + self.head.flops

    def parts(self) -> list[Node]:
        """The top-level parts in order: stem, each stage's parts, head (their children not listed)."""
        return [self.stem, *(p for s in self.stages for p in s.parts), self.head]

    def nodes(self) -> Iterator[Node]:
        """Every node, depth first: stem, each stage's parts, head."""
        for part in self.parts():
            yield from part.walk()

    @property
    def feature_info(self) -> list[dict[str, int | float | str]]:
        """Each stage's output as timm describes it: channels, stride from the input, module path; the stride is
        an integer, or a float 1/k (0.5) for a map that up-sampling stages made k times wider than the input."""
        size = self.input[-1]
        reductions = [stride_at(size, s.out_shape[-1]) for s in self.stages]
        return [
            {"num_chs": s.out_shape[0], "reduction": r if isinstance(r, int) else float(r), "module": f"stages.{i}"}
            for i, (s, r) in enumerate(zip(self.stages, reductions, strict=True))
        ]

    @property
    def channels_last(self) -> bool:
        """NHWC layout for the built model on the CPU (training on another device picks that device's,
        :func:`archdsl.plan.layout.channels_last`), unless kernels that cut NCHW maps into blocks and heads (the kinds
        that declare ``layout="nchw"``, :mod:`archdsl.plan.layout`: halo, global attention) carry at least 20% of
        the planned FLOPs. Convolutions run without layout reorders in NHWC and the outlook/transformer blocks
        work channels-last inside, so ResNet and VOLO steps are faster in NHWC on CPU and BoTNet's unchanged,
        while HaloNet's are slower (``benchmarks/models.py``)."""
        return device_channels_last(self.nodes(), "cpu")

    @property
    def recipe(self) -> Recipe:
        """The whole model: a ``Backbone`` of the stem, one ``Stage`` of parts per stage, and the head."""
        info = self.feature_info
        stages = [Recipe(STAGE, {"blocks": [p.recipe for p in s.parts]}) for s in self.stages]
        return Recipe(
            BACKBONE,
            {
                "stem": self.stem.recipe,
                "stages": stages,
                "head": self.head.recipe,
                "feature_channels": [int(f["num_chs"]) for f in info],
                "feature_reductions": [f["reduction"] for f in info],
                "channels_last": self.channels_last,
            },
        )

    def part_paths(self) -> list[tuple[str, Node]]:
        """Each stage part with its module path in the built model (``stages.1.5``: a stage is an
        ``nn.Sequential`` of its transition, position embedding and every repeat of every block)."""
        return [(f"stages.{i}.{j}", part) for i, stage in enumerate(self.stages) for j, part in enumerate(stage.parts)]

    def to_json(self, blocks: bool = False) -> dict[str, object]:
        """The ``archdsl summary --json`` object: stem, stages and head add up to the totals; ``blocks``
        lists each stage's parts (module path, spec path, repeat, type and its nested parts' types)."""

        def row(node: Node) -> dict[str, object]:
            return {
                "type": node.type,
                "inner": [c.type for c in node.children],
                "output": list(node.out_shape),
                "params": node.params,
                "flops": node.flops,
            }

        paths = {id(part): path for path, part in self.part_paths()}
        stages: list[dict[str, object]] = []
        for s in self.stages:
            entry: dict[str, object] = {
                "index": s.index,
                "output": list(s.out_shape),
                "params": s.params,
                "flops": s.flops,
            }
            if blocks:
                entry["blocks"] = [
                    {"path": paths[id(p)], "spec": p.path, "repeat": p.repeat, "role": p.role, **row(p)}
                    for p in s.parts
                ]
            stages.append(entry)
        return {
            "name": self.name,
            "params": self.params,
            "flops": self.flops,
            "input": list(self.input),
            "output": list(self.output),
            "stem": row(self.stem),
            "stages": stages,
            "head": row(self.head),
        }

    def to_data(self) -> dict[str, Any]:
        """The whole tree as JSON-compatible data (``archdsl summary --json --tree``); see :meth:`from_data`."""
        return {
            "name": self.name,
            "input": list(self.input),
            "output": list(self.output),
            "params": self.params,
            "flops": self.flops,
            "feature_info": self.feature_info,
            "stem": self.stem.to_data(),
            "stages": [_stage_data(s) for s in self.stages],
            "head": self.head.to_data(),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ModelPlan:
        return cls(
            name=data["name"],
            input=tuple(data["input"]),
            stem=Node.from_data(data["stem"]),
            stages=tuple(_stage_from_data(s) for s in data["stages"]),
            head=Node.from_data(data["head"]),
            output=tuple(data["output"]),
        )


def _stage_data(s: StagePlan) -> dict[str, Any]:
    return {
        "index": s.index,
        "in_shape": list(s.in_shape),
        "out_shape": list(s.out_shape),
        "params": s.params,
        "flops": s.flops,
        "parts": [p.to_data() for p in s.parts],
    }


def _stage_from_data(s: Mapping[str, Any]) -> StagePlan:
    parts = tuple(Node.from_data(p) for p in s["parts"])
    return StagePlan(s["index"], tuple(s["in_shape"]), tuple(s["out_shape"]), parts)
