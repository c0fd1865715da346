"""CGNL block against Yue et al. 2018: the non-compact generalised non-local over every (i, j, c, c') pair of a
channel group, written explicitly in float64, against the module's compact form."""

from __future__ import annotations

import math

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.cgnl import CompactGeneralizedNonLocal
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, check, conv1x1


def _pairwise(kernel: str, order: int, gamma: float, a: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """f(a, b) for every pair: a (B, L, 1), b (B, 1, L) -> (B, L, L)."""
    if kernel == "dot":
        return a * bb
    if kernel == "exact_gaussian":
        return torch.exp(-gamma * (a - bb) ** 2)
    beta = torch.exp(-gamma * (a**2 + bb**2))
    return sum(beta * (2 * gamma) ** p / math.factorial(p) * (a * bb) ** p for p in range(order + 1))


def _reference(x: torch.Tensor, m: CompactGeneralizedNonLocal, kernel: str) -> torch.Tensor:
    b, c, h, w = x.shape
    groups = m.groups
    theta, phi, g = conv1x1(x, m.theta), conv1x1(x, m.phi), conv1x1(x, m.g)  # (B, Ci, H, W)
    ci = theta.shape[1]
    cg = ci // groups
    y = torch.zeros_like(theta)
    for k in range(groups):
        sl = slice(k * cg, (k + 1) * cg)
        t, p, v = theta[:, sl].reshape(b, -1), phi[:, sl].reshape(b, -1), g[:, sl].reshape(b, -1)  # (B, L)
        f = _pairwise(kernel, m.order, m.gamma, t[:, :, None], p[:, None, :])  # f(theta_{ic}, phi_{jc'})
        y[:, sl] = (f * v[:, None, :]).sum(2).reshape(b, cg, h, w)  # y_{ic} = sum_{j,c'} f g_{jc'}
    # grouped 1x1 conv: output group k sees input group k only
    wz = m.out.weight[:, :, 0, 0]  # (C, Ci/G)
    co = c // groups
    z = torch.cat(
        [torch.einsum("oc,bchw->bohw", wz[k * co : (k + 1) * co], y[:, k * cg : (k + 1) * cg]) for k in range(groups)],
        dim=1,
    )
    # GroupNorm: per sample and group of C/G channels, normalise over its channels and positions
    zg = z.reshape(b, groups, -1)
    mean = zg.mean(2, keepdim=True)
    var = ((zg - mean) ** 2).mean(2, keepdim=True)
    zn = ((zg - mean) / torch.sqrt(var + m.norm.eps)).reshape(b, c, h, w)
    return x + zn * m.norm.weight.view(1, -1, 1, 1) + m.norm.bias.view(1, -1, 1, 1)


def _module(c: int, groups: int, kernel: str, order: int = 3, gamma: float = 1e-4) -> CompactGeneralizedNonLocal:
    torch.manual_seed(0)
    m = CompactGeneralizedNonLocal(c, c // 2, groups, kernel, order, gamma, zero_init=False).double()
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.normal_(0.0, 0.3)
    return m.eval()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel", ["dot", "gaussian"])
@pytest.mark.parametrize("groups", [1, 2, "per_channel"])
def test_compact_form_equals_the_generalized_non_local(
    shape: tuple[int, int, int, int], kernel: str, groups: int | str
) -> None:
    c = shape[1]
    m = _module(c, c // 2 if groups == "per_channel" else int(groups), kernel, order=3, gamma=0.05)
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, kernel), x)


def test_taylor_expansion_converges_to_the_gaussian_kernel() -> None:
    """At a high order the expansion is the Gaussian RBF kernel ``exp(-gamma (theta - phi)^2)`` itself."""
    m = _module(8, 2, "gaussian", order=24, gamma=0.05)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    check(m, _reference(x, m, "exact_gaussian"), x)


def test_groups_do_not_interact() -> None:
    """A change confined to one group's theta channels leaves the other groups' outputs alone."""
    m = _module(8, 2, "dot")
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        before = m(x)
        m.theta.weight[:2] += 1.0  # theta channels 0..1: group 0 of inner=4
        after = m(x)
    assert torch.equal(before[:, 4:], after[:, 4:]) and not torch.allclose(before[:, :4], after[:, :4])


def test_zero_init_starts_as_identity() -> None:
    m = CompactGeneralizedNonLocal(8, 4, 2, "gaussian", 3, 1e-4, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def test_no_bias_in_the_embeddings() -> None:
    m = CompactGeneralizedNonLocal(8, 4, 2, "dot", 3, 1e-4, zero_init=True)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"theta.weight", "phi.weight", "g.weight", "out.weight", "norm.weight", "norm.bias"}


def test_groups_must_divide_the_inner_channels() -> None:
    text = (
        "name: cgnl\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 24, blocks: [{type: bottleneck, width: 8}, {type: cgnl, groups: 8}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "cgnl.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("cgnl.yaml:") and "stages.0.blocks.1.groups:" in line, line
    assert "groups=8 must divide" in line, line
