"""Double attention block against Chen et al. 2018 (gather, then distribute), written per position
and per descriptor in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.a2 import DoubleAttention
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, check, conv1x1


def _reference(x: torch.Tensor, m: DoubleAttention) -> torch.Tensor:
    b, _, h, w = x.shape
    n = h * w
    a = conv1x1(x, m.phi).reshape(b, -1, n)  # (B, c_m, N): the features a_j
    logits_b = conv1x1(x, m.theta).reshape(b, -1, n)  # (B, c_n, N)
    logits_v = conv1x1(x, m.rho).reshape(b, -1, n)  # (B, c_n, N)
    c_m, c_n = a.shape[1], logits_b.shape[1]
    # gathering: g_k = sum_j a_j * softmax_j(b_kj), an attention map over the positions per descriptor k
    g = torch.zeros(b, c_m, c_n, dtype=x.dtype)
    for k in range(c_n):
        e = torch.exp(logits_b[:, k, :])  # (B, N)
        g[:, :, k] = (a * (e / e.sum(1, keepdim=True))[:, None, :]).sum(2)
    # distribution: z_i = sum_k v_ik g_k, v_i the softmax over the c_n descriptors at position i
    z = torch.zeros(b, c_m, n, dtype=x.dtype)
    for i in range(n):
        e = torch.exp(logits_v[:, :, i])  # (B, c_n)
        v = e / e.sum(1, keepdim=True)
        z[:, :, i] = (g * v[:, None, :]).sum(2)
    return x + conv1x1(z.reshape(b, c_m, h, w), m.out)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("c_m", "c_n"), [(4, 4), (6, 3), (2, 5)])
def test_a2_matches_the_paper(shape: tuple[int, int, int, int], c_m: int, c_n: int) -> None:
    torch.manual_seed(0)
    m = DoubleAttention(shape[1], c_m, c_n, zero_init=False).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_attention_maps_and_vectors_are_normalised_over_their_own_axes() -> None:
    """B sums to 1 over the positions (per map), V over the descriptors (per position): with a constant
    A the gathered descriptors equal A, and every position receives that same vector."""
    torch.manual_seed(0)
    m = DoubleAttention(8, 4, 3, zero_init=False).double().eval()
    with torch.no_grad():
        m.phi.weight.zero_()
        m.phi.bias.copy_(torch.arange(4, dtype=torch.float64))
        m.out.weight.copy_(torch.eye(8, 4, dtype=torch.float64)[:, :, None, None])
        m.out.bias.zero_()
        x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
        y = m(x) - x
    torch.testing.assert_close(y[:, :4], torch.arange(4, dtype=torch.float64).view(1, 4, 1, 1).expand(2, 4, 5, 7))
    torch.testing.assert_close(y[:, 4:], torch.zeros(2, 4, 5, 7, dtype=torch.float64))


def test_zero_init_starts_as_identity() -> None:
    m = DoubleAttention(8, 2, 2, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def test_widths_are_counts_or_fractions() -> None:
    text = (
        "name: a2\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: a2, c_m: 0.5, c_n: 3}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    plan = archdsl.plan_model(spec_from_text(text))
    (node,) = [n for n in plan.nodes() if n.type == "a2"]
    assert (node.recipe.kwargs["c_m"], node.recipe.kwargs["c_n"]) == (16, 3)


def test_a_width_that_leaves_no_channels_is_located() -> None:
    text = (
        "name: a2\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: a2, c_m: 0.01}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "a2.yaml"))
    (problem,) = err.value.problems
    assert "stages.0.blocks.1.c_m: c_m=0.01 leaves no channels of 32" in str(problem), str(problem)
