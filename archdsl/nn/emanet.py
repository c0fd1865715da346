"""EM attention unit (Li et al. 2019, "Expectation-Maximization Attention Networks for Semantic Segmentation",
arXiv:1907.13426).

The EMAU of the paper's Fig. 2 on a (B, C, H, W) map, with N = H*W positions:

- ``x = conv_in(X)``, a 1x1 conv (with bias) to ``inner`` channels, read as N column vectors x_n;
- ``mu^(0)``: K bases (``inner`` x K), a buffer, not a parameter: drawn from N(0, 2/K) and l2-normalised per
  basis at construction (the paper's initialisation);
- T iterations of
  E-step ``z_nk = exp(lambda x_n^T mu_k) / sum_j exp(lambda x_n^T mu_j)`` (a softmax over the K bases,
  lambda = 1 as the authors use) and
  M-step ``mu_k = sum_n z_nk x_n / sum_n z_nk`` followed by the paper's l2 normalisation
  ``mu_k <- mu_k / ||mu_k||_2`` (its "bases normalization", used instead of LayerNorm);
- reconstruction ``x~ = mu^(T) z^(T)T`` (each position a z-weighted sum of the bases), ReLU, a 1x1 conv
  (no bias) back to C and a BatchNorm, the residual ``+ X`` and a final ReLU (the paper's EMAU).

Bases maintenance (paper eq. 15): in training, after the T iterations the stored bases move by
``mu^(0) <- momentum * mu^(0) + (1 - momentum) * mean_over_batch(mu^(T))`` (momentum 0.9 in the paper),
in place, with no gradient through the update. In eval mode the stored bases only initialise the
iterations and are never changed (the momentum-free inference path).

Deviations from the paper, all numerical or stated options:

- the M-step divides by ``1e-6 + sum_n z_nk`` and the l2 normalisation by ``1e-6 + ||mu_k||_2`` (guards
  against division by zero, as the authors' code does);
- the updated running bases are not re-normalised after the moving average (eq. 15 as written; the
  authors' code does not either);
- by default the gradient flows through the T E/M iterations, so ``conv_in`` is trained. The authors'
  code cuts it (no gradient through the iterations, which leaves ``conv_in`` without gradient); that is
  ``stop_gradient=True`` here;
- the momentum update averages over the local batch only (no cross-device reduction);
- the convolutions keep PyTorch's default initialisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["EMAUnit"]

_EPS = 1e-6


def _l2norm(mu: torch.Tensor) -> torch.Tensor:
    """Each basis (a column of a (B, Ci, K) tensor) divided by ``1e-6 + its l2 norm``."""
    return mu / (_EPS + mu.square().sum(dim=1, keepdim=True).sqrt())


class EMAUnit(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    mu: torch.Tensor

    def __init__(
        self, channels: int, inner: int, bases: int, iterations: int, momentum: float, stop_gradient: bool
    ) -> None:
        super().__init__()
        self.iterations = iterations
        self.momentum = momentum
        self.stop_gradient = stop_gradient
        self.conv_in = nn.Conv2d(channels, inner, 1)
        mu = torch.randn(1, inner, bases) * math.sqrt(2.0 / bases)
        self.register_buffer("mu", _l2norm(mu))
        self.conv_out = nn.Conv2d(inner, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        feats = self.conv_in(x)
        feats = feats.reshape(b, feats.shape[1], h * w)  # (B, Ci, N)
        em_in = feats.detach() if self.stop_gradient else feats
        mu = self.mu.repeat(b, 1, 1)  # (B, Ci, K), a copy: the buffer is updated in place below
        for _ in range(self.iterations):
            z = (em_in.transpose(1, 2) @ mu).softmax(dim=2)  # E-step, (B, N, K)
            mu = _l2norm(em_in @ (z / (_EPS + z.sum(dim=1, keepdim=True))))  # M-step, (B, Ci, K)
        if self.training:
            with torch.no_grad():
                self.mu.mul_(self.momentum).add_(mu.detach().mean(dim=0, keepdim=True), alpha=1.0 - self.momentum)
        rec = (mu @ z.transpose(1, 2)).reshape(b, -1, h, w).relu()  # (B, Ci, H, W)
        return (x + self.norm(self.conv_out(rec))).relu()
