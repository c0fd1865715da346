"""External attention against Guo et al. 2021 eq. 3-7 (double normalisation, multi-head with shared
memories), written per head and per memory row in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.external_attention import ExternalAttention
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _reference(x: torch.Tensor, m: ExternalAttention, heads: int, relu: bool) -> torch.Tensor:
    b, c, h, w = x.shape
    n, d = h * w, c // heads
    f = conv1x1(x, m.proj_in).reshape(b, c, n).transpose(1, 2)  # (B, N, C): the query features F
    mk, mv = m.memory_key.weight, m.memory_value.weight.t()  # M_k (S, d), M_v (S, d)
    outs = []
    for head in range(heads):
        fh = f[:, :, head * d : (head + 1) * d]  # (B, N, d)
        logits = torch.einsum("bnd,sd->bns", fh, mk)  # alpha~_ij = F_i . M_k,j
        e = torch.exp(logits)
        a_hat = e / e.sum(dim=1, keepdim=True)  # eq. 5: softmax over the N positions i for each row j
        alpha = a_hat / a_hat.sum(dim=2, keepdim=True)  # then l1 over the S rows at each position
        outs.append(torch.einsum("bns,sd->bnd", alpha, mv))  # F_out = A M_v
    y = torch.cat(outs, dim=2).transpose(1, 2).reshape(b, c, h, w)
    y = x + bn_eval(conv1x1(y, m.proj_out), m.norm)
    return torch.relu(y) if relu else y


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("memory", "heads"), [(64, 1), (5, 2), (7, 4)])
@pytest.mark.parametrize("relu", [True, False])
def test_external_attention_matches_the_paper(
    shape: tuple[int, int, int, int], memory: int, heads: int, relu: bool
) -> None:
    torch.manual_seed(0)
    m = ExternalAttention(shape[1], memory, heads, relu).double()
    with torch.no_grad():  # memories independent of each other (they start tied)
        m.memory_value.weight.normal_()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, heads, relu), x)


def test_memories_start_tied_and_are_shared_by_the_heads() -> None:
    m = ExternalAttention(16, 8, 4, relu=True)
    torch.testing.assert_close(m.memory_value.weight, m.memory_key.weight.t())
    assert m.memory_key.weight.shape == (8, 4) and m.memory_value.weight.shape == (4, 8)


def test_attention_rows_sum_to_one_over_memory() -> None:
    """After the double normalisation, each position's attention over the S rows sums to 1 (eq. 5), so a
    value memory whose rows are all the same vector returns that vector at every position."""
    torch.manual_seed(0)
    m = ExternalAttention(8, 6, 2, relu=False).double().eval()
    with torch.no_grad():
        m.memory_value.weight.copy_(torch.arange(4, dtype=torch.float64)[:, None].expand(4, 6))
        m.proj_out.weight.copy_(torch.eye(8, dtype=torch.float64)[:, :, None, None])
        x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
        y = m(x) - x
        expected = bn_eval(torch.arange(4, dtype=torch.float64).repeat(2).view(1, 8, 1, 1).expand(2, 8, 5, 3), m.norm)
    torch.testing.assert_close(y, expected)


def test_heads_that_do_not_divide_the_channels_are_located() -> None:
    text = (
        "name: ea\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: external_attention, heads: 3}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "ea.yaml"))
    (problem,) = err.value.problems
    assert "stages.0.blocks.1.heads: heads=3 must divide the block's channels 32" in str(problem), str(problem)
