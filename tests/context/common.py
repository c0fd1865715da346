"""Shared by the context-block reference tests: shapes to check, BN statistics to set, the 1e-6 bar."""

from __future__ import annotations

import torch
from torch import nn

SHAPES = [(2, 8, 5, 7), (3, 16, 4, 4), (1, 12, 6, 3)]
"""(B, C, H, W): batch > 1, non-square maps, odd sides."""
TOL = 1e-6


def randomise_norms(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial affine weights and running statistics (then call ``.eval()``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.3)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def bn_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` per channel of a (B, C, H, W) map."""
    shape = (1, -1, 1, 1)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(shape)
    return (x - bn.running_mean.view(shape)) * scale + bn.bias.view(shape)


def conv1x1(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``W x_i + b`` at every position, written as a sum over input channels."""
    y = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1)


def check(module: nn.Module, ref: torch.Tensor, x: torch.Tensor) -> None:
    """The module in float64, eval, against ``ref``: max abs error <= 1e-6."""
    with torch.no_grad():
        got = module(x)
    assert got.shape == ref.shape
    err = (got - ref).abs().max().item()
    assert err <= TOL, f"max abs error {err:.3g}"
