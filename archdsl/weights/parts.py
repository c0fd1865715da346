"""The parts of a planned model whose weights a checkpoint can hold: stem, every stage part, head."""

from __future__ import annotations

from dataclasses import dataclass

from archdsl.plan.shapes import ModelPlan, Node

__all__ = ["Part", "model_parts"]


@dataclass(frozen=True)
class Part:
    """One top-level part: its plan node, where its tensors are in the built model, and its place in its stage."""

    node: Node
    """The planned part (``node.path`` is its spec path, ``node.repeat`` its repeat)."""
    module: str
    """Its module path in the built model: ``stem``, ``stages.1.3``, ``head``."""
    stage: int | None = None
    """Its stage, None for the stem and the head."""
    block: int = 0
    """Its index among its stage's blocks (transitions and position embeddings not counted): a ResNet's
    ``layer{stage + 1}.{block}``."""

    @property
    def where(self) -> str:
        """``repeat 2, module stages.0.2`` (the repeat only where there is one), for messages."""
        repeat = f"repeat {self.node.repeat}, " if self.node.repeat else ""
        return f"{repeat}module {self.module}"


def model_parts(plan: ModelPlan) -> list[Part]:
    """Stem, each stage's parts in order, head."""
    parts = [Part(plan.stem, "stem")]
    for i, stage in enumerate(plan.stages):
        blocks = 0
        for j, node in enumerate(stage.parts):
            parts.append(Part(node, f"stages.{i}.{j}", i, blocks))
            blocks += node.role == "block"
    parts.append(Part(plan.head, "head"))
    return parts
