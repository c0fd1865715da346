"""Token MLP: ``Linear(C -> hidden) -> GELU -> Linear(hidden -> C)`` with biases, on channels-last tokens."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """The feed-forward sub-layer of transformer-style blocks; acts on the last dimension."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (..., C) -> (..., hidden) -> (..., C)
