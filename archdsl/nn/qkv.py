"""Query, key and value 1x1 convs with a zero-initialised output scale: the projections that criss-cross attention
(CCNet, arXiv:1811.11721) and the position attention module of DANet (arXiv:1809.02983) share.

q and k are 1x1 convs to ``inner`` channels (both papers: C / 8), v a 1x1 conv that keeps the C channels, all
with bias; ``gamma`` is a learnable scalar that scales the attention's aggregate and starts at zero (the
authors' code of both), so a residual block around it starts as the identity. The attention modules subclass
:class:`QueryKeyValue`, so the parameters stay theirs (``query``, ``key``, ``value``, ``gamma``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QueryKeyValue"]


class QueryKeyValue(nn.Module):
    """The ``query``, ``key`` and ``value`` convs of a (B, C, H, W) map and the scalar ``gamma`` (zero)."""

    NO_WEIGHT_DECAY = ("gamma",)
    """The output scale is a gate, like a norm's weight: no weight decay."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (B, C', H, W), k (B, C', H, W) and v (B, C, H, W) of ``x``."""
        return self.query(x), self.key(x), self.value(x)
