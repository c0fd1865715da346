"""What a ResNet block's names need of an archdsl block: a conv mixer (where it has one), no attached attention."""

from __future__ import annotations

from archdsl.plan.shapes import Node

__all__ = ["plain_resnet_block"]


def plain_resnet_block(node: Node) -> str | None:
    """Why ``node`` is not a block of a plain ResNet, or None."""
    for child in node.children:
        if child.role == "mixer" and child.type != "conv":
            return f"a ResNet block's mixer is a 3x3 conv; this one's is {child.type}"
        if child.role == "attention":
            return f"a ResNet block has no attached attention; this one has {child.type}"
    return None
