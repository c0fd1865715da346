"""Overlapping k x k windows (stride s) of a channels-last map, and their adjoint, the overlap-adding fold.

``windows(x)`` takes a zero-padded (B, Hp, Wp, C) map and returns every window's k² vectors, split into
heads, as (B, nh, nw, heads, k², C/heads): the layout outlook attention multiplies with, so the product
needs no permute copy. ``fold(y)`` sums such windows back onto a (B, Hp, Wp, C) map. Each is k² strided
copies (or adds) of a (B, nh, nw, C) view, where ``F.unfold``/``F.fold`` go through im2col/col2im on NCHW
and need a permute copy on each side; the two are each other's backward, so neither gradient scatters.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["fold", "windows"]


def _view(x: torch.Tensor, u: int, w: int, s: int, nh: int, nw: int) -> torch.Tensor:
    """The (B, nh, nw, C) view of the map's pixels at window offset (u, w)."""
    return x[:, u : u + s * (nh - 1) + 1 : s, w : w + s * (nw - 1) + 1 : s]


def _windows(x: torch.Tensor, k: int, s: int, nh: int, nw: int, heads: int) -> torch.Tensor:
    b, _, _, c = x.shape
    out = x.new_empty(b, nh, nw, heads, k * k, c // heads)
    for u in range(k):
        for w in range(k):
            out[:, :, :, :, u * k + w].copy_(_view(x, u, w, s, nh, nw).unflatten(3, (heads, c // heads)))
    return out


def _fold(y: torch.Tensor, size: tuple[int, int], k: int, s: int) -> torch.Tensor:
    b, nh, nw, heads, _, d = y.shape
    out = y.new_zeros(b, size[0], size[1], heads * d)
    for u in range(k):
        for w in range(k):
            _view(out, u, w, s, nh, nw).add_(y[:, :, :, :, u * k + w].flatten(3))
    return out


class _Windows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: int, s: int, nh: int, nw: int, heads: int) -> torch.Tensor:
        ctx.args = (x.shape[1], x.shape[2], k, s)
        return _windows(x, k, s, nh, nw, heads)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hp, wp, k, s = ctx.args
        return _Fold.apply(grad, (hp, wp), k, s), None, None, None, None, None


class _Fold(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, size: tuple[int, int], k: int, s: int) -> torch.Tensor:
        ctx.args = (k, s, y.shape[1], y.shape[2], y.shape[3])
        return _fold(y, size, k, s)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        k, s, nh, nw, heads = ctx.args
        return _Windows.apply(grad.contiguous(), k, s, nh, nw, heads), None, None, None


def windows(x: torch.Tensor, kernel_size: int, stride: int, heads: int) -> torch.Tensor:
    """(B, Hp, Wp, C) padded map -> (B, nh, nw, heads, k², C/heads), nh = (Hp - k)//s + 1 (as ``F.unfold``)."""
    nh, nw = (x.shape[1] - kernel_size) // stride + 1, (x.shape[2] - kernel_size) // stride + 1
    return _Windows.apply(x, kernel_size, stride, nh, nw, heads)


def fold(y: torch.Tensor, size: tuple[int, int], kernel_size: int, stride: int) -> torch.Tensor:
    """(B, nh, nw, heads, k², d) windows -> the (B, Hp, Wp, heads*d) map they tile, overlaps summed."""
    return _Fold.apply(y, size, kernel_size, stride)
