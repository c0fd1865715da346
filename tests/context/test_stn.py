"""Spatial transformer against Jaderberg et al. 2015 section 3 in float64: the localisation net written as sums
(conv window, adaptive average-pool bins, linear layers), the affine grid from eq. 1 and the bilinear sampler
from eq. 5 (a sum over every input pixel), without affine_grid or grid_sample."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archdsl.nn.stn import SpatialTransformer
from tests.context.common import SHAPES, check, conv_same


def _adaptive_avg(x: torch.Tensor, p: int) -> torch.Tensor:
    """Bin (a, c) is the mean over rows floor(a H / p) .. ceil((a + 1) H / p) - 1, and likewise for columns."""
    b, ch, h, w = x.shape
    out = torch.empty(b, ch, p, p, dtype=x.dtype)
    for a in range(p):
        for c in range(p):
            rows = slice(a * h // p, math.ceil((a + 1) * h / p))
            cols = slice(c * w // p, math.ceil((c + 1) * w / p))
            out[:, :, a, c] = x[:, :, rows, cols].mean(dim=(2, 3))
    return out


def _linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    return torch.einsum("oi,bi->bo", layer.weight, x) + layer.bias


def _reference(x: torch.Tensor, m: SpatialTransformer, pool: int) -> torch.Tensor:
    b, _, h, w = x.shape
    loc = _adaptive_avg(torch.relu(conv_same(x, m.conv)), pool).reshape(b, -1)
    theta = _linear(torch.relu(_linear(loc, m.fc)), m.theta).reshape(b, 2, 3)
    ac = m.align_corners

    def target(j: int, n: int) -> float:  # normalised coordinate of pixel j of n
        return 2 * j / (n - 1) - 1 if ac else (2 * j + 1) / n - 1

    def pixel(t: torch.Tensor, n: int) -> torch.Tensor:  # normalised source coordinate -> pixel units
        return (t + 1) * (n - 1) / 2 if ac else ((t + 1) * n - 1) / 2

    rows = torch.arange(h, dtype=x.dtype)
    cols = torch.arange(w, dtype=x.dtype)
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            xt, yt = target(j, w), target(i, h)
            xs = theta[:, 0, 0] * xt + theta[:, 0, 1] * yt + theta[:, 0, 2]  # eq. 1, (B,)
            ys = theta[:, 1, 0] * xt + theta[:, 1, 1] * yt + theta[:, 1, 2]
            kx = torch.clamp(1 - (pixel(xs, w)[:, None] - cols).abs(), min=0)  # (B, W): max(0, 1 - |x_s - m|)
            ky = torch.clamp(1 - (pixel(ys, h)[:, None] - rows).abs(), min=0)  # (B, H): max(0, 1 - |y_s - n|)
            out[:, :, i, j] = torch.einsum("bcnm,bn,bm->bc", x, ky, kx)  # eq. 5
    return out


def _module(c: int, pool: int, align_corners: bool) -> SpatialTransformer:
    return SpatialTransformer(
        channels=c, loc_channels=5, loc_kernel=3, pool_size=pool, hidden=7, align_corners=align_corners
    ).double()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("pool", [2, 3])
def test_stn_matches_the_paper(shape: tuple[int, int, int, int], align_corners: bool, pool: int) -> None:
    torch.manual_seed(0)
    m = _module(shape[1], pool, align_corners)
    with torch.no_grad():  # a warp far from the identity: rotation, scale, shear and shifts past the border
        m.theta.weight.normal_(0.0, 0.3)
        m.theta.bias.add_(torch.randn(6, dtype=torch.float64) * 0.4)
    x = torch.randn(*shape, dtype=torch.float64)
    check(m.eval(), _reference(x, m, pool), x)


@pytest.mark.parametrize("align_corners", [False, True])
def test_starts_as_the_identity_warp(align_corners: bool) -> None:
    torch.manual_seed(0)
    m = _module(6, 2, align_corners).eval()
    assert torch.count_nonzero(m.theta.weight) == 0
    assert m.theta.bias.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    check(m, x, x)
