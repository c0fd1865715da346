"""Object context block (Yuan & Wang 2018, "OCNet: Object Context Network for Scene Parsing", arXiv:1809.00916).

The object context module is a self-attention over the positions of a (B, C, H, W) map:
``c_i = W sum_j softmax_j(f(x_i) . f(x_j) / sqrt(d)) v(x_j)`` with the key (= query) transform ``f`` a 1x1 conv
+ BN + ReLU to ``d = key`` channels (the query shares the key transform, as the authors' code), the value
transform ``v`` a 1x1 conv, and ``W`` a 1x1 conv back to C (whose weights start at zero with ``zero_init``,
as the authors' code). The ``variant`` is one of the paper's three modules:

- ``base`` (Base-OC): ``ReLU(BN(conv1x1([c; x])))``, the context concatenated with the input, fused to C
  (value channels C/2, as the authors' code);
- ``pyramid`` (Pyramid-OC): the object context computed inside each region of the map split into s x s
  regions, for every s of ``levels`` (the paper: 1, 2, 3, 6; rows and columns split as the authors' code,
  ``H // s`` each, the last region taking the rest), one context module per level (value channels C); the
  input is lifted to ``len(levels) * C`` channels by a 1x1 conv + BN + ReLU, concatenated with the levels'
  contexts and fused by a 1x1 conv + BN + ReLU to C;
- ``asp`` (ASP-OC): five branches, each to C channels: a 3x3 conv + BN + ReLU followed by the object context
  and a 1x1 conv + BN + ReLU; a 1x1 conv + BN + ReLU; and a 3x3 conv + BN + ReLU for each of ``dilations``
  (the paper: 12, 24, 36 at output stride 8); concatenated and fused by a 1x1 conv + BN + ReLU to C.

The block keeps the map and, as in the paper, is not residual: it outputs the fused map.
Deviations from the paper: every branch is C channels wide (the paper reduces 2048 to 512 / 256 channels
before or inside the module); BN is followed by ReLU where the authors' code uses InPlace-ABN's leaky ReLU; the
dropout after the fusion is left out; the ASP context branch attends at full resolution (the authors' code
max-pools it by 2 and upsamples the context bilinearly).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["OCNET_VARIANTS", "ObjectContext", "ObjectContextBlock", "region_splits"]

OCNET_VARIANTS = ("base", "pyramid", "asp")


def region_splits(size: int, s: int) -> list[tuple[int, int, int]]:
    """A side of ``size`` cut into ``s`` pieces of ``size // s``, the last taking the rest: runs of equal pieces as
    ``(start, count, length)``."""
    step = size // s
    runs = [(0, s - 1, step)] if s > 1 else []
    return [*runs, ((s - 1) * step, 1, size - (s - 1) * step)]


def _conv_bn_relu(c_in: int, c_out: int, k: int, dilation: int = 1, bias: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, k, padding=dilation * (k // 2), dilation=dilation, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class ObjectContext(nn.Module):
    """The object context of each position among the positions of its region: (B, C, H, W) -> (B, out, H, W)."""

    def __init__(self, channels: int, key: int, value: int, out: int, regions: int, zero_init: bool) -> None:
        super().__init__()
        self.regions = regions
        self.key = _conv_bn_relu(channels, key, 1, bias=True)  # also the query transform
        self.value = nn.Conv2d(channels, value, 1)
        self.out = nn.Conv2d(value, out, 1)
        if zero_init:
            for param in self.out.parameters():  # weight and bias
                nn.init.zeros_(param)

    @staticmethod
    def _attend(
        k: torch.Tensor, v: torch.Tensor, rows: tuple[int, int, int], cols: tuple[int, int, int]
    ) -> torch.Tensor:
        """Attention inside each of the ``count_r x count_c`` regions of one rectangle of the map."""
        b, dk, dv = k.shape[0], k.shape[1], v.shape[1]
        (r0, nr, lr), (c0, nc, lc) = rows, cols
        k = k[:, :, r0 : r0 + nr * lr, c0 : c0 + nc * lc]
        v = v[:, :, r0 : r0 + nr * lr, c0 : c0 + nc * lc]
        k = k.reshape(b, dk, nr, lr, nc, lc).permute(0, 2, 4, 3, 5, 1).reshape(b, nr * nc, lr * lc, dk)
        v = v.reshape(b, dv, nr, lr, nc, lc).permute(0, 2, 4, 3, 5, 1).reshape(b, nr * nc, lr * lc, dv)
        attn = (k @ k.transpose(2, 3) * dk**-0.5).softmax(dim=-1)  # query = key transform
        y = attn @ v  # (B, regions, n, dv)
        return y.reshape(b, nr, nc, lr, lc, dv).permute(0, 5, 1, 3, 2, 4).reshape(b, dv, nr * lr, nc * lc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = self.key(x), self.value(x)
        row_runs = region_splits(x.shape[2], self.regions)
        col_runs = region_splits(x.shape[3], self.regions)
        rows = [torch.cat([self._attend(k, v, r, c) for c in col_runs], dim=3) for r in row_runs]
        return self.out(torch.cat(rows, dim=2))


class ObjectContextBlock(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self, channels: int, key: int, variant: str, levels: list[int], dilations: list[int], zero_init: bool
    ) -> None:
        super().__init__()
        if variant not in OCNET_VARIANTS:
            raise ValueError(f"variant must be one of {OCNET_VARIANTS}, got {variant!r}")
        self.variant = variant
        c = channels
        self.contexts = nn.ModuleList()
        self.branches = nn.ModuleList()
        self.lift: nn.Module = nn.Identity()
        if variant == "base":
            self.contexts.append(ObjectContext(c, key, c // 2, c, 1, zero_init))
            self.fuse = _conv_bn_relu(2 * c, c, 1, bias=True)
        elif variant == "pyramid":
            self.contexts.extend(ObjectContext(c, key, c, c, s, zero_init) for s in levels)
            self.lift = _conv_bn_relu(c, len(levels) * c, 1, bias=True)
            self.fuse = _conv_bn_relu(2 * len(levels) * c, c, 1, bias=True)
        else:
            self.context_in = _conv_bn_relu(c, c, 3, bias=True)
            self.contexts.append(ObjectContext(c, key, c, c, 1, zero_init))
            self.context_out = _conv_bn_relu(c, c, 1, bias=True)
            self.branches.append(_conv_bn_relu(c, c, 1))
            self.branches.extend(_conv_bn_relu(c, c, 3, dilation=d) for d in dilations)
            self.fuse = _conv_bn_relu((2 + len(dilations)) * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "base":
            return self.fuse(torch.cat([self.contexts[0](x), x], dim=1))
        if self.variant == "pyramid":
            return self.fuse(torch.cat([self.lift(x), *[ctx(x) for ctx in self.contexts]], dim=1))
        context = self.context_out(self.contexts[0](self.context_in(x)))
        return self.fuse(torch.cat([context, *[branch(x) for branch in self.branches]], dim=1))
