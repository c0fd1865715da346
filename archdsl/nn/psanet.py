"""PSANet block (Zhao et al. 2018, "PSANet: Point-wise Spatial Attention Network for Scene Parsing", ECCV 2018).

The paper has no arXiv id (ECCV 2018 open access). On a (B, C, H, W) map X with N = H*W positions (paper
section 3, Figure 3), each branch (collect, distribute) reduces X to ``x = ReLU(BN(conv1x1(X)))`` (``inner``
channels), adapts it with a 1x1 conv + BN + ReLU and predicts with a 1x1 conv, at every position i, an
over-completed mask ``h_i`` of (2H-1) x (2W-1) values centred at i. Cropping the H x W part of h_i that covers
the map gives the attention ``a_{i,j} = h_i[H-1 + (row_j - row_i), W-1 + (col_j - col_i)]`` of i over every
position j. Then (paper eq. 8 and 9):

- collect: ``z_i = 1/N sum_j a^c_{i,j} x_j`` (position i collects with its own mask);
- distribute: ``z_i = 1/N sum_j a^d_{j,i} x_j`` (every position j distributes to i with j's mask, the transpose);

The outputs of the branches used (``mode``: collect, distribute or bi, both) are concatenated and projected
back to C by a 1x1 conv + BN + ReLU, concatenated with X and fused to C by a k x k conv + BN + ReLU
(k = ``fusion_kernel``). The mask channels depend on the map, so the module is built for one H x W and
refuses any other. No residual around the block, as in the paper.
Deviations from the paper: the 1x1 projection and the k x k fusion convs follow the authors' code (the paper
says the features are fused by convolution); the block sits inside a backbone stage instead of the head.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["PSA_MODES", "PointwiseSpatialAttention"]

PSA_MODES = ("collect", "distribute", "bi")


class _Branch(nn.Module):
    """(B, C, H, W) -> the reduced feature (B, inner, N) and the attention (B, N_j, N_i) of each i over j."""

    def __init__(self, channels: int, inner: int, height: int, width: int, distribute: bool) -> None:
        super().__init__()
        self.h, self.w, self.distribute = height, width, distribute
        self.reduce = ConvBN(channels, inner, 1, 1, act="relu")
        self.adapt = ConvBN(inner, inner, 1, 1, act="relu")
        self.mask = nn.Conv2d(inner, (2 * height - 1) * (2 * width - 1), 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        h, w, n = self.h, self.w, self.h * self.w
        feats = self.reduce(x)
        masks = self.mask(self.adapt(feats)).reshape(b, -1, n)  # (B, (2H-1)(2W-1), N): the mask of each position
        rows = torch.arange(h, device=x.device).repeat_interleave(w)  # (N,)
        cols = torch.arange(w, device=x.device).repeat(h)
        centre = (h - 1 - rows) * (2 * w - 1) + (w - 1 - cols)  # mask index of offset 0 minus the predictor's place
        place = rows * (2 * w - 1) + cols
        index = place[:, None] + centre[None, :]  # [t, p]: mask index, in p's mask, of target t
        gathered = masks.gather(1, index.expand(b, -1, -1))  # (B, N_t, N_p) = h_p cropped at t
        # collect: a_{i,j} from i's mask, attn[j, i] = gathered[j, i]; distribute: a_{j,i}, attn[j, i] = gathered[i, j]
        attn = gathered.transpose(1, 2) if self.distribute else gathered
        return feats.reshape(b, -1, n), attn


class PointwiseSpatialAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W), for the one H x W it was built for."""

    def __init__(self, channels: int, inner: int, height: int, width: int, mode: str, fusion_kernel: int) -> None:
        super().__init__()
        if mode not in PSA_MODES:
            raise ValueError(f"mode must be one of {PSA_MODES}, got {mode!r}")
        self.h, self.w = height, width
        kinds = {"collect": (False,), "distribute": (True,), "bi": (False, True)}[mode]
        self.branches = nn.ModuleList(_Branch(channels, inner, height, width, d) for d in kinds)
        self.project = ConvBN(len(kinds) * inner, channels, 1, 1, act="relu")
        self.fuse = ConvBN(2 * channels, channels, fusion_kernel, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if (h, w) != (self.h, self.w):
            raise ValueError(f"this point-wise spatial attention was built for {self.h}x{self.w} maps, got {h}x{w}")
        outs = []
        for branch in self.branches:
            feats, attn = branch(x)
            outs.append(torch.bmm(feats, attn).reshape(b, -1, h, w) / (h * w))  # z_i = 1/N sum_j a x_j
        return self.fuse(torch.cat([x, self.project(torch.cat(outs, dim=1))], dim=1))
