"""A part kind's renaming from archdsl's module names to a ResNet checkpoint's (timm, torchvision)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archdsl.plan.shapes import Node

__all__ = ["RenameRule"]


@dataclass(frozen=True)
class RenameRule:
    """Leading module names, archdsl's -> the checkpoint's, for one part kind."""

    prefixes: tuple[tuple[str, str], ...]
    """``(archdsl prefix, checkpoint prefix)`` pairs, both ending in ``.``; the first that starts a name renames it."""
    refuses: Callable[[Node], str | None] = lambda node: None
    """Why a part of this kind has no ResNet names (a halo mixer, an attached attention), or None."""

    def checkpoint_key(self, name: str) -> str | None:
        """The checkpoint's name of the part-local tensor ``name``, or None when no prefix renames it."""
        for ours, theirs in self.prefixes:
            if name.startswith(ours):
                return theirs + name[len(ours) :]
        return None
