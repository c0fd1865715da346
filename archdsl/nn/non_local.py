"""Non-local block (Wang et al. 2018, "Non-local Neural Networks", arXiv:1711.07971).

``z = BN(W_z y) + x`` with ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)`` (paper eq. 1 and 6) over the N = H*W
positions of a (B, C, H, W) map; ``theta``, ``phi``, ``g`` are 1x1 convs to ``inner`` channels (with bias),
``W_z`` a 1x1 conv back to C followed by a BatchNorm whose scale starts at zero, so that the block starts
as the identity (paper section 4.1). The pairwise function ``mode`` is one of the paper's section 3.2:

- ``embedded_gaussian``: ``f = exp(theta_i . phi_j)``, normalised by its sum (a softmax over j);
- ``gaussian``: ``f = exp(x_i . x_j)`` on the input itself (no theta, phi), softmax over j;
- ``dot_product``: ``f = theta_i . phi_j``, normalised by the number of positions N_j;
- ``concatenation``: ``f = ReLU(w_f . [theta_i; phi_j])``, normalised by N_j; ``w_f`` (2 x inner) is
  applied as its theta half and its phi half, summed per pair, the same linear map.

``subsample`` max-pools phi and g by 2 (the paper's cheaper variant, section 4.1), so N_j = ceil(H/2)*ceil(W/2).
No deviation from the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NONLOCAL_MODES", "NonLocal"]

NONLOCAL_MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")


class NonLocal(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    NO_WEIGHT_DECAY = ("w_f",)
    """The concatenation's pairwise weight vector ``[a; b]`` is trained without weight decay, like the other
    vectors (norm scales, biases, gates)."""

    def __init__(self, channels: int, inner: int, mode: str, subsample: bool, zero_init: bool) -> None:
        super().__init__()
        if mode not in NONLOCAL_MODES:
            raise ValueError(f"mode must be one of {NONLOCAL_MODES}, got {mode!r}")
        self.mode = mode
        embedded = mode != "gaussian"
        self.theta = nn.Conv2d(channels, inner, 1) if embedded else nn.Identity()
        self.phi = nn.Conv2d(channels, inner, 1) if embedded else nn.Identity()
        self.g = nn.Conv2d(channels, inner, 1)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True) if subsample else nn.Identity()
        self.w_f = (
            nn.Parameter(torch.empty(2 * inner).uniform_(-(inner**-0.5), inner**-0.5))
            if mode == "concatenation"
            else None
        )
        self.out = nn.Conv2d(inner, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        if zero_init:
            nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (B, Ci, N)
        phi = self.pool(self.phi(x)).flatten(2)  # (B, Ci, Nj)
        g = self.pool(self.g(x)).flatten(2)  # (B, Ci, Nj)
        if self.w_f is not None:  # concatenation: ReLU(a . theta_i + b . phi_j) / Nj
            ci = theta.shape[1]
            f = F.relu((self.w_f[:ci] @ theta)[:, :, None] + (self.w_f[ci:] @ phi)[:, None, :])  # (B, N, Nj)
            attn = f / phi.shape[-1]
        else:
            f = theta.transpose(1, 2) @ phi  # (B, N, Nj)
            attn = f / phi.shape[-1] if self.mode == "dot_product" else f.softmax(dim=-1)
        y = (attn @ g.transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)  # (B, Ci, H, W)
        return x + self.norm(self.out(y))
