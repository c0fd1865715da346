"""VOLO patch-embedding stem (Yuan et al. 2021, "VOLO: Vision Outlooker for Visual Recognition",
arXiv:2106.13112).

``conv 7x7/2 -> BN -> ReLU -> [conv 3x3/1 -> BN -> ReLU] x 2`` at ``hidden`` channels (no conv biases), then
a non-overlapping ``(p/2) x (p/2)`` conv with stride ``p/2`` and a bias to ``channels``: ``/p`` overall
(``p = patch_size``; VOLO uses 8, i.e. a 4x4/4 projection). No deviation from the paper's stem.
"""

from __future__ import annotations

from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["PatchEmbedStem"]


class PatchEmbedStem(nn.Sequential):
    def __init__(self, in_channels: int, channels: int, hidden: int, patch_size: int) -> None:
        proj = patch_size // 2
        super().__init__(
            ConvBN(in_channels, hidden, 7, 2, act="relu"),
            ConvBN(hidden, hidden, 3, 1, act="relu"),
            ConvBN(hidden, hidden, 3, 1, act="relu"),
            nn.Conv2d(hidden, channels, proj, proj),
        )
