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


def conv_same(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``b_o + sum_{c,u,v} W[o, c, u, v] x[c, i + u - p, j + v - p]``, zero outside the map (odd k, p = k // 2)."""
    b, c, h, w = x.shape
    k = conv.kernel_size[0]
    p = k // 2
    padded = torch.zeros(b, c, h + 2 * p, w + 2 * p, dtype=x.dtype)
    padded[:, :, p : p + h, p : p + w] = x
    out = conv.bias.view(1, -1, 1, 1).expand(b, -1, h, w).clone()
    for u in range(k):
        for v in range(k):
            out += torch.einsum("oc,bchw->bohw", conv.weight[:, :, u, v], padded[:, :, u : u + h, v : v + w])
    return out


def assert_batch_independent(module: nn.Module, shape: tuple[int, int, int, int]) -> None:
    """Changing the other samples of a batch leaves sample 0's output as it was, bit for bit (a softmax or
    norm without its ``dim`` would mix the batch), and sample 0 alone gives the same output."""
    x = torch.randn(*shape, dtype=torch.float64)
    x2 = x.clone()
    x2[1:] = torch.randn(shape[0] - 1, *shape[1:], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module(x2)[0], module(x)[0], rtol=0, atol=0)
        torch.testing.assert_close(module(x[:1])[0], module(x)[0])


def assert_exports_and_runs_channels_last(module: nn.Module, shape: tuple[int, int, int, int]) -> None:
    """``torch.export`` with a dynamic batch gives the module's output at another batch size, and a
    channels-last module and input give the same output."""
    x = torch.randn(*shape)
    exported = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    x3 = torch.randn(shape[0] + 1, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x3), module(x3))
        last = module.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(last, module(x), rtol=1e-5, atol=1e-5)


def spec_text(block: str, size: int = 16, name: str = "ctx") -> str:
    """A one-stage model whose stage is a bottleneck then ``block`` (flow-style YAML)."""
    return (
        f"name: {name}\ninput: {{channels: 3, size: {size}}}\nstem: {{type: conv, channels: 16}}\n"
        f"stages: [{{channels: 24, blocks: [{{type: bottleneck, width: 8}}, {block}]}}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
