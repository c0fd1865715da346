"""Global reasoning unit (Chen et al. 2019, "Graph-Based Global Reasoning Networks", arXiv:1811.12814).

The GloRe unit of the paper's Fig. 3 on a (B, C, H, W) map X with L = H*W positions:

- ``phi``: a 1x1 conv (with bias) reduces X to ``states`` = C' channels;
- ``theta``: a 1x1 conv (with bias) to ``nodes`` = N channels gives the projection B (N x L);
- projection to the interaction space: ``V = B phi(X)^T`` (N nodes x C' states; eq. 2), optionally divided
  by L (``normalize``, the authors' option for inputs of varying size);
- graph convolution ``Z = ((I - A_g) V) W_g`` (eq. 3): a node-wise 1x1 conv1d over the node dimension
  (learnt N x N adjacency, with bias) added to its input (the identity), a ReLU, then a state-wise 1x1
  conv1d W_g (C' x C', no bias), as drawn in Fig. 3;
- reverse projection with the same B: ``Y = Z^T B`` (C' x L, eq. 4), a 1x1 conv (no bias) extending C'
  back to C, a BatchNorm, and the residual ``X + BN(W Y)``.

The BatchNorm's scale starts at zero when ``zero_init`` (the authors' code zero-initialises it, so that
the unit starts as the identity). Deviations from the paper: the adjacency is learnt as ``-A_g``, i.e.
the node conv computes ``A'V`` and the unit adds ``V + A'V`` (the same family of maps, ``A' = -A_g``);
the node conv's bias and the ReLU between the two graph convs follow the authors' Fig. 3 and code, not
eq. 3; the BatchNorm uses PyTorch's default eps 1e-5 (the authors' code: 1e-4).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GloRe"]


class GloRe(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, states: int, nodes: int, normalize: bool, zero_init: bool) -> None:
        super().__init__()
        self.normalize = normalize
        self.phi = nn.Conv2d(channels, states, 1)  # state reduction
        self.theta = nn.Conv2d(channels, nodes, 1)  # the projection B
        self.node_conv = nn.Conv1d(nodes, nodes, 1)  # A' over the node dimension (with the identity: I - A_g)
        self.state_conv = nn.Conv1d(states, states, 1, bias=False)  # W_g
        self.extend = nn.Conv2d(states, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        if zero_init:
            nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = self.phi(x)
        s = s.reshape(b, s.shape[1], h * w)  # (B, C', L)
        proj = self.theta(x)
        proj = proj.reshape(b, proj.shape[1], h * w)  # (B, N, L)
        v = proj @ s.transpose(1, 2)  # (B, N, C'): nodes x states
        if self.normalize:
            v = v * (1.0 / (h * w))
        g = (v + self.node_conv(v)).relu()  # node-wise: (I - A_g) V, then ReLU
        z = self.state_conv(g.transpose(1, 2))  # state-wise W_g: (B, C', N)
        y = (z @ proj).reshape(b, -1, h, w)  # reverse projection with the same B: (B, C', H, W)
        return x + self.norm(self.extend(y))
