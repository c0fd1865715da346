"""Overlapping k x k windows (padding p, stride s) of a channels-last map, and their adjoint, the overlap-adding
fold.

``windows(x)`` takes a (B, H, W, C) map and returns every window's k² vectors, split into heads, as
(B, nh, nw, heads, k², C/heads), zero where a window reaches into the padding: the layout outlook attention
multiplies with, so the product needs no permute copy. ``fold(y)`` sums such windows back onto the (B, H, W, C)
map, dropping what falls on the padding. Each is k² strided copies (or adds) between a (B, nh, nw, C) slab of
the windows and the pixels at one window offset, clipped to the map, so no padded copy of the map exists;
``F.unfold``/``F.fold`` instead go through im2col/col2im on NCHW with a permute copy on each side. The two
are each other's backward, so neither gradient scatters.

``block_windows(x)`` is the same windows of a (B, C, H, W) map for few, large windows (halo attention's
blocks with their halos): one clipped copy per window instead of per kernel offset, straight into the
(B, groups, nh, nw, C/groups, k, k) layout, with ``block_fold`` its adjoint and backward.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

__all__ = ["block_fold", "block_windows", "fold", "window_count", "windows"]

_Geometry = tuple[int, int, int, int, int, int, int]  # (H, W, k, p, s, nh, nw)


def _span(size: int, offset: int, p: int, s: int, n: int) -> tuple[slice, slice]:
    """Windows i whose pixel at kernel offset ``offset`` (row i*s + offset - p) lies inside [0, size), and those
    pixels: (window slice, map slice)."""
    lo = max(0, -((offset - p) // s))  # first i with i*s + offset - p >= 0
    hi = min(n - 1, (size - 1 + p - offset) // s)  # last i with i*s + offset - p <= size - 1
    if hi < lo:
        return slice(0, 0), slice(0, 0)
    start = lo * s + offset - p
    return slice(lo, hi + 1), slice(start, start + (hi - lo) * s + 1, s)


def window_count(size: int, kernel_size: int, padding: int, stride: int) -> int:
    """Windows along one side (``F.unfold``'s arithmetic)."""
    return (size + 2 * padding - kernel_size) // stride + 1


@lru_cache(maxsize=64)
def _pairs(g: _Geometry) -> tuple[tuple[int, slice, slice, slice, slice], ...]:
    """Per kernel offset t: the window slices and the map slices it copies between (one geometry, computed once)."""
    h, w, k, p, s, nh, nw = g
    out = []
    for u in range(k):
        win_r, map_r = _span(h, u, p, s, nh)
        for v in range(k):
            win_c, map_c = _span(w, v, p, s, nw)
            out.append((u * k + v, win_r, win_c, map_r, map_c))
    return tuple(out)


def _windows(x: torch.Tensor, g: _Geometry, heads: int) -> torch.Tensor:
    b, _, _, c = x.shape
    out = x.new_zeros(b, g[5], g[6], heads, g[2] ** 2, c // heads)
    for t, win_r, win_c, map_r, map_c in _pairs(g):
        out[:, win_r, win_c, :, t].copy_(x[:, map_r, map_c].unflatten(3, (heads, c // heads)))
    return out


def _fold(y: torch.Tensor, g: _Geometry) -> torch.Tensor:
    b, _, _, heads, _, d = y.shape
    out = y.new_zeros(b, g[0], g[1], heads * d)
    for t, win_r, win_c, map_r, map_c in _pairs(g):
        out[:, map_r, map_c].add_(y[:, win_r, win_c, :, t].flatten(3))
    return out


class _Windows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, g: _Geometry, heads: int) -> torch.Tensor:
        ctx.g = g
        return _windows(x, g, heads)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _Fold.apply(grad, ctx.g), None, None


class _Fold(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, g: _Geometry) -> torch.Tensor:
        ctx.g, ctx.heads = g, y.shape[3]
        return _fold(y, g)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _Windows.apply(grad.contiguous(), ctx.g, ctx.heads), None


def _geometry(h: int, w: int, k: int, p: int, s: int) -> _Geometry:
    return h, w, k, p, s, window_count(h, k, p, s), window_count(w, k, p, s)


def windows(x: torch.Tensor, kernel_size: int, padding: int, stride: int, heads: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, nh, nw, heads, k², C/heads), nh = (H + 2p - k)//s + 1 (``F.unfold``'s windows)."""
    return _Windows.apply(x, _geometry(x.shape[1], x.shape[2], kernel_size, padding, stride), heads)


def fold(y: torch.Tensor, size: tuple[int, int], kernel_size: int, padding: int, stride: int) -> torch.Tensor:
    """(B, nh, nw, heads, k², d) windows -> the (B, H, W, heads*d) map of ``size`` they tile, overlaps summed."""
    return _Fold.apply(y, _geometry(size[0], size[1], kernel_size, padding, stride))


def _clip(start: int, k: int, size: int) -> tuple[slice, slice]:
    """A window of k pixels starting at map pixel ``start`` (negative: in the padding), clipped to [0, size):
    (its slice of the window, its slice of the map)."""
    return slice(max(0, -start), min(k, size - start)), slice(max(0, start), min(size, start + k))


@lru_cache(maxsize=64)
def _blocks(g: _Geometry) -> tuple[tuple[int, int, slice, slice, slice, slice], ...]:
    """Per window (i, j): the part of its k x k extent inside the map and those map pixels:
    (i, j, window rows, window cols, map rows, map cols)."""
    h, w, k, p, s, nh, nw = g
    out = []
    for i in range(nh):
        rows, map_r = _clip(i * s - p, k, h)
        for j in range(nw):
            cols, map_c = _clip(j * s - p, k, w)
            out.append((i, j, rows, cols, map_r, map_c))
    return tuple(out)


def _block_windows(x: torch.Tensor, g: _Geometry, groups: int) -> torch.Tensor:
    b, c = x.shape[:2]
    out = x.new_zeros(b, groups, g[5], g[6], c // groups, g[2], g[2])
    xg = x.unflatten(1, (groups, c // groups))  # (B, groups, d, H, W)
    for i, j, rows, cols, map_r, map_c in _blocks(g):
        out[:, :, i, j, :, rows, cols].copy_(xg[:, :, :, map_r, map_c])
    return out


def _block_fold(y: torch.Tensor, g: _Geometry) -> torch.Tensor:
    b, groups, _, _, d = y.shape[:5]
    out = y.new_zeros(b, groups, d, g[0], g[1])
    for i, j, rows, cols, map_r, map_c in _blocks(g):
        out[:, :, :, map_r, map_c].add_(y[:, :, i, j, :, rows, cols])
    return out.flatten(1, 2)


class _BlockWindows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, g: _Geometry, groups: int) -> torch.Tensor:
        ctx.g = g
        return _block_windows(x, g, groups)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _BlockFold.apply(grad, ctx.g), None, None


class _BlockFold(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, g: _Geometry) -> torch.Tensor:
        ctx.g, ctx.groups = g, y.shape[1]
        return _block_fold(y, g)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _BlockWindows.apply(grad, ctx.g, ctx.groups), None


def block_windows(x: torch.Tensor, kernel_size: int, padding: int, stride: int, groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, groups, nh, nw, C/groups, k, k): ``F.unfold``'s windows, channels split into groups."""
    return _BlockWindows.apply(x, _geometry(x.shape[2], x.shape[3], kernel_size, padding, stride), groups)


def block_fold(y: torch.Tensor, size: tuple[int, int], kernel_size: int, padding: int, stride: int) -> torch.Tensor:
    """(B, groups, nh, nw, d, k, k) windows -> the (B, groups*d, H, W) map of ``size`` they tile, overlaps summed."""
    return _BlockFold.apply(y, _geometry(size[0], size[1], kernel_size, padding, stride))
