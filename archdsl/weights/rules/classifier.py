"""The classifier head's linear layer is a ResNet's ``fc``; a head with a ``final`` conv has no ResNet names."""

from __future__ import annotations

from archdsl.plan.shapes import Node
from archdsl.weights.rules.rule import RenameRule


def _refuses(node: Node) -> str | None:
    if node.recipe.kwargs.get("final_channels"):
        return "a ResNet's head is one linear layer; this classifier has a final conv (final_channels)"
    return None


KEY = "head.classifier"
RULE = RenameRule((("fc.", "fc."),), _refuses)
