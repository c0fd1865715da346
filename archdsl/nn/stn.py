"""Spatial transformer (Jaderberg et al. 2015, "Spatial Transformer Networks", arXiv:1506.02025).

A learned affine warp of a (B, C, H, W) map (paper section 3), keeping its channels and size:

- localisation net f_loc (section 3.1): a k x k conv (C -> ``loc_channels``, "same" padding, with bias) and
  ReLU, an adaptive average pool to ``pool_size`` x ``pool_size`` (so it works at any map size and keeps
  coarse positions, which a global pool would lose), a linear layer to ``hidden`` units and ReLU, and a final
  linear layer to the 6 parameters of theta = [[t11, t12, t13], [t21, t22, t23]];
  the final layer starts with zero weights and the identity bias (1, 0, 0, 0, 1, 0), so the block starts as
  the identity warp, as the paper's experiments and the PyTorch tutorial initialise it;
- grid generator (section 3.2, eq. 1): each output pixel's normalised coordinates (x_t, y_t) in [-1, 1]
  map to the source coordinates (x_s, y_s) = theta (x_t, y_t, 1); ``F.affine_grid``;
- sampler (section 3.3, eq. 5, bilinear): ``V_c(i) = sum_{n,m} U_c(n, m) max(0, 1 - |x_s(i) - m|)
  max(0, 1 - |y_s(i) - n|)`` in pixel coordinates, so source points outside the map read zeros;
  ``F.grid_sample`` with ``padding_mode="zeros"``.

``align_corners`` is passed explicitly to both: with ``False`` (the default) -1 and 1 are the outer edges of
the border pixels (pixel j of W is at x = (2j + 1)/W - 1), with ``True`` they are the centres of the border
pixels (x = 2j/(W - 1) - 1); either way the identity theta samples every pixel at its own centre.
No residual connection: the block's output is the warped map, as in the paper (adding the unwarped input
would mix two misaligned maps), and the identity start already makes it harmless at initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialTransformer"]


class SpatialTransformer(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self, channels: int, loc_channels: int, loc_kernel: int, pool_size: int, hidden: int, align_corners: bool
    ) -> None:
        super().__init__()
        if loc_kernel % 2 != 1:
            raise ValueError(f"loc_kernel must be odd, got {loc_kernel}")
        self.align_corners = align_corners
        self.conv = nn.Conv2d(channels, loc_channels, kernel_size=loc_kernel, padding=loc_kernel // 2)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.fc = nn.Linear(loc_channels * pool_size * pool_size, hidden)
        self.theta = nn.Linear(hidden, 6)
        nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loc = self.pool(F.relu(self.conv(x))).flatten(1)  # (B, loc_channels * pool_size^2)
        theta = self.theta(F.relu(self.fc(loc))).reshape(-1, 2, 3)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=self.align_corners)  # (B, H, W, 2): (x_s, y_s)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=self.align_corners)
