"""Analytic parameter and FLOP counts of the layers blocks are made of (no torch).

FLOPs are 2 x multiply-adds of convolutions and matrix products, the quantity that
``torch.utils.flop_counter.FlopCounterMode`` reports: biases, norms, activations and softmax are free.
Each helper mirrors one torch layer, or one brick of ``archdsl.nn`` that is not a kind of its own, exactly,
so that planned parameters equal the built model's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cost", "batchnorm", "conv", "conv_bn", "layernorm", "linear", "matmul", "mlp", "param", "relpos"]


@dataclass(frozen=True)
class Cost:
    """Parameters and forward FLOPs (batch 1) of a piece of a model."""

    params: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.flops + other.flops)

    def __mul__(self, n: int) -> Cost:
        return Cost(self.params * n, self.flops * n)

    __rmul__ = __mul__


def conv(c_in: int, c_out: int, k: int, out_hw: tuple[int, int], groups: int = 1, bias: bool = False) -> Cost:
    """``nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)`` producing an ``out_hw`` map."""
    weights = c_out * (c_in // groups) * k * k
    return Cost(weights + (c_out if bias else 0), 2 * weights * out_hw[0] * out_hw[1])


def linear(c_in: int, c_out: int, tokens: int, bias: bool = True) -> Cost:
    """``nn.Linear(c_in, c_out, bias=bias)`` applied to ``tokens`` vectors."""
    return Cost(c_in * c_out + (c_out if bias else 0), 2 * c_in * c_out * tokens)


def matmul(m: int, k: int, n: int, batch: int = 1) -> Cost:
    """A batched (m x k) @ (k x n) product."""
    return Cost(0, 2 * batch * m * k * n)


def batchnorm(c: int) -> Cost:
    """``nn.BatchNorm2d(c)``: weight and bias (running statistics are buffers)."""
    return Cost(2 * c, 0)


def layernorm(c: int) -> Cost:
    """``nn.LayerNorm(c)``."""
    return Cost(2 * c, 0)


def param(*shape: int) -> Cost:
    """A free ``nn.Parameter`` of this shape."""
    n = 1
    for s in shape:
        n *= s
    return Cost(n, 0)


def conv_bn(c_in: int, c_out: int, k: int, out_hw: tuple[int, int], groups: int = 1) -> Cost:
    """``archdsl.nn.conv_bn.ConvBN``: a conv without bias and a BatchNorm."""
    return conv(c_in, c_out, k, out_hw, groups) + batchnorm(c_out)


def mlp(dim: int, hidden: int, tokens: int) -> Cost:
    """``archdsl.nn.mlp.Mlp`` applied to ``tokens`` vectors."""
    return linear(dim, hidden, tokens) + linear(hidden, dim, tokens)


def relpos(head_dim: int, extent: tuple[int, int], queries: int, keys: tuple[int, int]) -> Cost:
    """``archdsl.nn.relpos.RelativePosition2d`` applied to ``queries`` query vectors (all batch dims and heads
    together) against a ``keys = (Nk_h, Nk_w)`` key grid."""
    lh, lw = extent
    tables = param(2 * lh - 1, head_dim) + param(2 * lw - 1, head_dim)
    return tables + Cost(0, 2 * queries * head_dim * (keys[0] + keys[1]))
