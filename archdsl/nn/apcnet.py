"""APCNet block (He et al. 2019, "Adaptive Pyramid Context Network for Semantic Segmentation", CVPR 2019).

The paper has no arXiv id (CVPR 2019 open access). One adaptive context module (ACM) per pyramid scale s
(paper section 3.3, Figure 2), on a (B, C, H, W) map X:

- ``x = ReLU(BN(conv1x1(X)))``, the reduced feature (``inner`` channels);
- ``y = ReLU(BN(conv1x1(avgpool_s(X))))``: the s x s adaptively average-pooled regions, reduced alike;
- ``g = ReLU(BN(conv1x1(avgpool_1(x))))``: the global information of the reduced feature;
- the affinity of pixel i to the s^2 regions ``alpha_i = sigmoid(W_a (x_i + g) + b_a)`` (a 1x1 conv to s^2);
- the adaptive context ``z_i = sum_j alpha_ij y_j``, then ``ReLU(ReLU(BN(conv1x1(z))) + x)`` (the ACM's own
  residual onto x), then a 1x1 conv + BN + ReLU.

The input and the outputs of every ACM are concatenated and fused by a k x k conv + BN + ReLU back to C
channels (the paper fuses the pyramid with a conv; k = ``fusion_kernel``). The block itself has no residual
around it, as in the paper, where the pyramid is the head's context module.
Deviations from the paper: the 1x1 conv + BN + ReLU on g, on z before the residual and after it (the
"fusion" conv) follow the mmsegmentation implementation (the paper draws only the convs and the residual);
the block sits inside a backbone stage instead of before the classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.conv_bn import ConvBN

__all__ = ["AdaptiveContextModule", "AdaptivePyramidContext"]


class AdaptiveContextModule(nn.Module):
    """(B, C, H, W) -> (B, inner, H, W): the ACM of one scale s."""

    def __init__(self, channels: int, inner: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.reduce = ConvBN(channels, inner, 1, 1, act="relu")
        self.pooled_reduce = ConvBN(channels, inner, 1, 1, act="relu")
        self.global_info = ConvBN(inner, inner, 1, 1, act="relu")
        self.affinity = nn.Conv2d(inner, scale * scale, 1)
        self.residual = ConvBN(inner, inner, 1, 1, act="relu")
        self.fusion = ConvBN(inner, inner, 1, 1, act="relu")

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feats.shape
        x = self.reduce(feats)  # (B, r, H, W)
        y = self.pooled_reduce(F.adaptive_avg_pool2d(feats, self.scale)).reshape(b, -1, self.scale**2)  # (B, r, S)
        g = self.global_info(F.adaptive_avg_pool2d(x, 1))  # (B, r, 1, 1)
        alpha = torch.sigmoid(self.affinity(x + g)).reshape(b, self.scale**2, h * w)  # (B, S, N)
        z = torch.matmul(y, alpha).reshape(b, -1, h, w)  # z_i = sum_j alpha_ij y_j
        return self.fusion(F.relu(self.residual(z) + x))


class AdaptivePyramidContext(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): ACMs at every scale, concatenated with the input, fused back to C."""

    def __init__(self, channels: int, inner: int, scales: list[int], fusion_kernel: int) -> None:
        super().__init__()
        self.acms = nn.ModuleList(AdaptiveContextModule(channels, inner, s) for s in scales)
        self.fuse = ConvBN(channels + len(scales) * inner, channels, fusion_kernel, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([x, *(acm(x) for acm in self.acms)], dim=1))
