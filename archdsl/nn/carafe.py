"""CARAFE (Wang et al. 2019, "CARAFE: Content-Aware ReAssembly of FEatures", arXiv:1905.02188).

Up-samples a (B, C, H, W) map by sigma to (B, C, sigma*H, sigma*W) with kernels predicted from its content
(paper section 3):

- kernel prediction: a channel compressor (1x1 conv C -> C_m, with bias), a content encoder (k_enc x k_enc
  conv C_m -> sigma^2 k_up^2, "same" padding, with bias), the pixel shuffle of its sigma^2 k_up^2 channels to
  a k_up^2-channel map of sigma*H x sigma*W (``F.pixel_shuffle`` order: channel ``n * sigma^2 + dy * sigma + dx``
  is kernel element n of output pixel (sigma*i + dy, sigma*j + dx)), and a softmax over the k_up^2 elements of
  each output pixel's kernel;
- content-aware reassembly (eq. 4): output pixel l' = (i', j') is ``sum_{n,m=-r..r} W_l'(n, m) X(i + n, j + m)``
  with (i, j) = (floor(i'/sigma), floor(j'/sigma)) and r = floor(k_up/2), the same kernel for every channel;
  kernel element (n, m) is index (n + r) * k_up + (m + r). Neighbours outside the map count as zero (as the
  official CUDA kernel does); the softmax is not renormalised over the rest.

The reassembly is dense: the k_up x k_up windows of the input map are unfolded once, and one batched product
per source pixel applies its sigma^2 kernels to its window (no per-output-pixel copies of the windows).
As in the official implementation (mmcv ``CARAFEPack``), the content encoder starts with N(0, 0.001) weights
and a zero bias, so every kernel starts close to the k_up x k_up mean.
Deviation from the paper: the paper's CARAFE keeps the channels; as an archdsl transition it must output the
stage's channels, so a 1x1 conv (with bias) maps the reassembled C channels to ``out_channels`` when they
differ (none when they are equal). The paper's grouped kernels (``up_group`` in mmcv) are not offered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CARAFE"]


class CARAFE(nn.Module):
    """(B, C, H, W) -> (B, out_channels, scale * H, scale * W)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int,
        compressed_channels: int,
        encoder_kernel: int,
        up_kernel: int,
    ) -> None:
        super().__init__()
        if encoder_kernel % 2 != 1 or up_kernel % 2 != 1:
            raise ValueError(f"encoder_kernel and up_kernel must be odd, got {encoder_kernel} and {up_kernel}")
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        self.scale = scale
        self.up_kernel = up_kernel
        self.compressor = nn.Conv2d(in_channels, compressed_channels, kernel_size=1)
        self.encoder = nn.Conv2d(
            compressed_channels,
            scale * scale * up_kernel * up_kernel,
            kernel_size=encoder_kernel,
            padding=encoder_kernel // 2,
        )
        nn.init.normal_(self.encoder.weight, std=0.001)
        nn.init.zeros_(self.encoder.get_parameter("bias"))
        self.project = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if out_channels != in_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s, k = self.scale, self.up_kernel
        kernels = F.pixel_shuffle(self.encoder(self.compressor(x)), s)  # (B, k*k, sH, sW)
        kernels = kernels.softmax(dim=1)  # normalise each output pixel's kernel
        kernels = kernels.reshape(b, k * k, h, s, w, s)  # output pixel (s*i + dy, s*j + dx) -> [.., i, dy, j, dx]
        windows = F.unfold(x, kernel_size=k, padding=k // 2).reshape(b, c, k * k, h, w)  # (B, C, k*k, H, W)
        out = torch.einsum("bcnhw,bnhywx->bchywx", windows, kernels)  # (B, C, H, s, W, s)
        return self.project(out.reshape(b, c, h * s, w * s))  # (B, C', sH, sW)
