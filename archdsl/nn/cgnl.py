"""Compact generalised non-local block (Yue et al. 2018, "Compact Generalized Non-local Network", arXiv:1810.13125).

The generalised non-local operation relates every position *and channel* of a group to every other:
``y_{i,c} = sum_{j, c'} f(theta_{i,c}, phi_{j,c'}) g_{j,c'}`` over the N = H*W positions and the C_g channels
of a channel group (the paper's eq. for the generalised non-local). For a kernel that factorises,
``f(x, y) = sum_p a_p(x) b_p(y)``, it is computed in its compact form, linear in N:
``y_{i,c} = sum_p a_p(theta_{i,c}) sum_{j,c'} b_p(phi_{j,c'}) g_{j,c'}`` (the paper's key equation):

- ``dot``: ``f(x, y) = x y``, so ``y = theta * (phi . g)``;
- ``gaussian``: ``f(x, y) = exp(-gamma (x - y)^2)`` Taylor-expanded to order P,
  ``f ~ sum_{p=0..P} beta (2 gamma)^p / p! x^p y^p`` with ``beta = exp(-gamma (x^2 + y^2))`` (the paper's
  expansion; beta factorises into ``exp(-gamma x^2) exp(-gamma y^2)``).

theta, phi and g are 1x1 convs without bias to ``inner`` channels, split into ``groups`` groups of channels;
the groups' outputs are mapped back to C by a grouped 1x1 conv (``groups`` groups, no bias) and a GroupNorm
(``groups`` groups), added to the input. ``zero_init`` starts the GroupNorm's scale at zero, so that the
block starts as the identity (as the authors' code).
No deviation from the paper. (The authors' code simplifies beta to the constant ``exp(-2 gamma)``; this
module keeps the paper's beta. Their optional ``use_scale`` division is not provided.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CGNL_KERNELS", "CompactGeneralizedNonLocal"]

CGNL_KERNELS = ("dot", "gaussian")


class CompactGeneralizedNonLocal(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self, channels: int, inner: int, groups: int, kernel: str, order: int, gamma: float, zero_init: bool
    ) -> None:
        super().__init__()
        if kernel not in CGNL_KERNELS:
            raise ValueError(f"kernel must be one of {CGNL_KERNELS}, got {kernel!r}")
        if inner % groups or channels % groups:
            raise ValueError(f"groups={groups} must divide inner={inner} and channels={channels}")
        self.groups = groups
        self.kernel = kernel
        self.order = order
        self.gamma = gamma
        self.coefs = [(2 * gamma) ** p / math.factorial(p) for p in range(order + 1)]
        self.theta = nn.Conv2d(channels, inner, 1, bias=False)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)
        self.g = nn.Conv2d(channels, inner, 1, bias=False)
        self.out = nn.Conv2d(inner, channels, 1, groups=groups, bias=False)
        self.norm = nn.GroupNorm(groups, channels)
        if zero_init:
            nn.init.zeros_(self.norm.weight)

    def _taylor(self, t: torch.Tensor, scale: bool) -> torch.Tensor:
        """(B, G, L) -> (B, G, P+1, L): ``exp(-gamma t^2) t^p`` (times ``(2 gamma)^p / p!`` if ``scale``)."""
        damp = torch.exp(-self.gamma * t * t)
        terms = [damp * t**p * (self.coefs[p] if scale else 1.0) for p in range(self.order + 1)]
        return torch.stack(terms, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        t = self.theta(x).reshape(b, self.groups, -1)  # (B, G, L): a group's channels by positions, L = C_g N
        p = self.phi(x).reshape(b, self.groups, -1)
        g = self.g(x).reshape(b, self.groups, -1, 1)  # (B, G, L, 1)
        if self.kernel == "dot":
            att = p.unsqueeze(2) @ g  # (B, G, 1, 1): sum_{j,c'} phi g
            y = att @ t.unsqueeze(2)  # (B, G, 1, L)
        else:
            att = self._taylor(p, scale=False) @ g  # (B, G, P+1, 1): sum_{j,c'} b_p(phi) g
            y = att.transpose(2, 3) @ self._taylor(t, scale=True)  # (B, G, 1, L): sum_p a_p(theta) att_p
        y = y.reshape(b, -1, h, w)
        return x + self.norm(self.out(y))
