"""Dynamic graph message passing against Zhang et al. 2020 (dynamic sampling at learned offsets around a dilated
grid, dynamic filters, affinities softmaxed over the sampled nodes, message aggregation, update), written per
node and sampled neighbour in float64, with bilinear interpolation computed from its formula."""

from __future__ import annotations

import math

import pytest
import torch

import archdsl
from archdsl.compiler.count import measure
from archdsl.errors import ShapeError
from archdsl.nn.dgmn import DynamicGraphMessagePassing
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, assert_exports_and_runs_channels_last, bn_eval, check, conv1x1, randomise_norms


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A k x k conv with zero padding k // 2: ``b_o + sum_{c,u,v} W_ocuv x_c(i + u - k//2, j + v - k//2)``."""
    b, _, h, w = x.shape
    k = weight.shape[-1]
    p = k // 2
    y = bias.view(1, -1, 1, 1).expand(b, -1, h, w).clone()
    for u in range(k):
        for v in range(k):
            for i in range(h):
                for j in range(w):
                    ii, jj = i + u - p, j + v - p
                    if 0 <= ii < h and 0 <= jj < w:
                        y[:, :, i, j] += x[:, :, ii, jj] @ weight[:, :, u, v].t()
    return y


def _bilinear(img: torch.Tensor, py: float, px: float) -> torch.Tensor:
    """``sum over the 4 pixels (y, x) around (py, px) of (1 - |py - y|)(1 - |px - x|) img[:, y, x]``, pixels
    outside the map reading 0. ``img``: (C, H, W)."""
    h, w = img.shape[1:]
    y0, x0 = math.floor(py), math.floor(px)
    out = torch.zeros(img.shape[0], dtype=img.dtype)
    for y in (y0, y0 + 1):
        for x in (x0, x0 + 1):
            if 0 <= y < h and 0 <= x < w:
                out = out + (1 - abs(py - y)) * (1 - abs(px - x)) * img[:, y, x]
    return out


def _reference(x: torch.Tensor, m: DynamicGraphMessagePassing, k: int, dilation: int) -> torch.Tensor:
    b, c, h, w = x.shape
    kk, g = k * k, m.groups
    cg = c // g
    offsets = _conv(x, m.offset.weight, m.offset.bias)  # (B, 2K, H, W): (dy, dx) of neighbour t at 2t, 2t + 1
    logits = conv1x1(x, m.affinity)  # (B, K, H, W)
    filters = conv1x1(x, m.filters)  # (B, G*K, H, W): group gg, neighbour t at gg*K + t
    grid = [((t // k - k // 2) * dilation, (t % k - k // 2) * dilation) for t in range(kk)]  # row-major (dy, dx)
    msg = torch.zeros_like(x)
    for bb in range(b):
        for i in range(h):
            for j in range(w):
                e = [math.exp(logits[bb, t, i, j].item()) for t in range(kk)]
                alpha = [v / sum(e) for v in e]  # softmax over the K sampled nodes
                for t, (dy, dx) in enumerate(grid):
                    py = i + dy + offsets[bb, 2 * t, i, j].item()
                    px = j + dx + offsets[bb, 2 * t + 1, i, j].item()
                    v = _bilinear(x[bb], py, px)  # h(p_it): (C,)
                    for gg in range(g):
                        ch = slice(gg * cg, (gg + 1) * cg)
                        msg[bb, ch, i, j] += alpha[t] * filters[bb, gg * kk + t, i, j] * v[ch]
    return x + bn_eval(conv1x1(msg, m.out), m.norm)


CONFIGS = [(3, 1, 1), (3, 2, 2), (5, 1, 4)]  # (kernel_size, dilation, channels per group)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("k", "dilation", "group_channels"), CONFIGS)
@pytest.mark.parametrize("offsets", ["zero", "learned"])
@pytest.mark.parametrize("offset_kernel", [3, 1])
def test_dgmn_matches_the_paper(
    shape: tuple[int, int, int, int], k: int, dilation: int, group_channels: int, offsets: str, offset_kernel: int
) -> None:
    torch.manual_seed(0)
    m = DynamicGraphMessagePassing(shape[1], k, dilation, offset_kernel, group_channels, zero_init=False).double()
    randomise_norms(m)
    if offsets == "learned":  # fractional offsets, some reaching outside the map
        with torch.no_grad():
            m.offset.weight.normal_(0.0, 0.3)
            m.offset.bias.normal_(0.0, 1.5)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, k, dilation), x)


def test_offsets_start_at_zero_so_sampling_starts_on_the_dilated_grid() -> None:
    """With zero offsets, one-hot affinities and unit filters, the message is the input shifted by the chosen
    grid position (zero outside the map)."""
    torch.manual_seed(0)
    m = DynamicGraphMessagePassing(4, 3, 2, 3, 1, zero_init=False).double().eval()
    assert not m.offset.weight.any() and not m.offset.bias.any()
    t = 5  # (dy, dx) = (0, +2)
    with torch.no_grad():
        m.affinity.weight.zero_()
        m.affinity.bias.copy_(torch.where(torch.arange(9) == t, 50.0, -50.0))
        m.filters.weight.zero_()
        m.filters.bias.fill_(1.0)
        m.out.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        m.norm.weight.fill_(1.0)
        m.norm.bias.zero_()
        m.norm.running_mean.zero_()
        m.norm.running_var.fill_(1.0 - m.norm.eps)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    shifted = torch.zeros_like(x)
    shifted[:, :, :, :-2] = x[:, :, :, 2:]
    with torch.no_grad():
        torch.testing.assert_close(m(x) - x, shifted, rtol=0, atol=1e-12)


def test_zero_init_starts_as_identity() -> None:
    m = DynamicGraphMessagePassing(8, 3, 1, 3, 2, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def _spec(block: str) -> archdsl.spec.ModelSpec:
    text = (
        "name: dgmn\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        f"stages: [{{channels: 32, blocks: [{{type: bottleneck, width: 8}}, {block}]}}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    return spec_from_text(text, "dgmn.yaml")


@pytest.mark.parametrize(
    "block",
    [
        "{type: dgmn}",
        "{type: dgmn, kernel_size: 5, dilation: 3, offset_kernel: 1}",
        "{type: dgmn, channels_per_group: 8}",
    ],
)
def test_planned_counts_equal_the_built_module(block: str) -> None:
    spec = _spec(block)
    plan = archdsl.plan_model(spec)
    got = measure(archdsl.build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params and got.flops == plan.flops


def test_channels_per_group_must_divide_the_channels() -> None:
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(_spec("{type: dgmn, channels_per_group: 3}"))
    (problem,) = err.value.problems
    assert str(problem) == (
        "dgmn.yaml:4:97: stages.0.blocks.1.channels_per_group: the block's channels=32 must be divisible by "
        "channels_per_group=3"
    )


def test_learned_offsets_export_with_a_dynamic_batch_and_run_channels_last() -> None:
    torch.manual_seed(0)
    m = DynamicGraphMessagePassing(8, 3, 2, 3, 2, zero_init=False)
    with torch.no_grad():
        m.offset.weight.normal_(0.0, 0.3)
        m.offset.bias.normal_(0.0, 1.5)
    m.eval()
    assert_exports_and_runs_channels_last(m, (2, 8, 5, 7))
