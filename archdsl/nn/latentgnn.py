"""LatentGNN (Zhang, Yan and He 2019, "LatentGNN: Learning Efficient Non-local Relations for Visual Recognition",
arXiv:1905.11634), in the symmetric form in which one kernel links the visible and the latent nodes both ways.

The N = H*W positions of a (B, C, H, W) map are the visible nodes. Their features are reduced to
C' = C / reduction channels by a 1x1 conv (no bias) and a BatchNorm, then l2-normalised over channels:
``x_i``. Each of ``kernels`` kernels has d latent nodes and its own edge weights
``psi_k(x_i) = ReLU(BN(W_psi x_i))_k`` (a 1x1 conv C' -> d without bias, BN, ReLU), l2-normalised over the d
latent nodes at each position. Then (the three steps of the paper's figure 1):

1. visible-to-latent: ``z_k = sum_i psi_k(x_i) x_i`` (d x C');
2. latent-to-latent: ``z~_k = sum_j softmax_j(zn_k . zn_j) z_j`` with ``zn`` the l2-normalised latent
   features (a dense affinity over the d latent nodes, computed from them);
3. latent-to-visible with the same kernel: ``x~_i = sum_k psi_k(x_i) z~_k``.

The kernels' outputs are concatenated (the paper's mixture of low-rank kernels), brought back to C by a 1x1
conv (no bias) and a BatchNorm, and added with a learnable scalar scale: ``out = x + gamma * BN(W_up x~)``;
``zero_init`` starts gamma at 0 (the authors' code), otherwise at 1.

The paper leaves the kernel psi and the normalisations generic; they are the authors' code's (symmetric
mode) here. Deviations: all kernels have the same number d of latent nodes and share the reduced features
(as in the authors' code); their psi convs are computed as one conv to kernels*d maps with one BatchNorm
over them, which is the same as one conv and BN per kernel. The authors' optional graph convolution after
step 3 and their asymmetric mode (separate reductions and kernels for the two directions) are not provided.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LatentGNN"]


class LatentGNN(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    NO_WEIGHT_DECAY = ("gamma",)
    """The output scale is a gate, like a norm's weight: no weight decay."""

    def __init__(self, channels: int, inner: int, latent: int, kernels: int, zero_init: bool) -> None:
        super().__init__()
        self.kernels = kernels
        self.latent = latent
        self.reduce = nn.Conv2d(channels, inner, 1, bias=False)
        self.reduce_norm = nn.BatchNorm2d(inner)
        self.psi = nn.Conv2d(inner, kernels * latent, 1, bias=False)  # the kernels' edge weights, kernel-major
        self.psi_norm = nn.BatchNorm2d(kernels * latent)
        self.up = nn.Conv2d(kernels * inner, channels, 1, bias=False)
        self.up_norm = nn.BatchNorm2d(channels)
        self.gamma = nn.Parameter(torch.zeros(1) if zero_init else torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        feat = F.normalize(self.reduce_norm(self.reduce(x)), dim=1)  # (B, C', H, W), unit norm at each position
        adj = torch.relu(self.psi_norm(self.psi(feat))).reshape(b, self.kernels, self.latent, h * w)
        adj = F.normalize(adj, dim=2)  # (B, K, d, N): unit norm over the latent nodes at each position
        visible = feat.flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, N, C')
        z = adj @ visible  # (B, K, d, C'): step 1, visible to latent
        zn = F.normalize(z, dim=-1)
        affinity = (zn @ zn.transpose(-1, -2)).softmax(dim=-1)  # (B, K, d, d)
        z = affinity @ z  # step 2, latent to latent
        y = z.transpose(-1, -2) @ adj  # (B, K, C', N): step 3, latent to visible
        y = y.reshape(b, -1, h, w)  # kernels concatenated along channels
        return x + self.gamma * self.up_norm(self.up(y))
