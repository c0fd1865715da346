"""A stage: its parts in order (transition, position embedding, blocks), an ``nn.Sequential``."""

from __future__ import annotations

from torch import nn

__all__ = ["Stage"]


class Stage(nn.Sequential):
    """``nn.Sequential(*blocks)`` with keyword construction, so a recipe can name it."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__(*blocks)
