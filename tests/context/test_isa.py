"""Interlaced sparse self-attention against Huang et al. 2019, written per position in float64 on the padded map."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.isa import InterlacedSparseAttention, SelfAttention2d
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _cbr(x: torch.Tensor, seq: nn.Sequential) -> torch.Tensor:
    return torch.relu(bn_eval(conv1x1(x, seq[0]), seq[1]))


def _attention(x: torch.Tensor, m: SelfAttention2d, key_of: list[tuple[int, int]]) -> torch.Tensor:
    """``ReLU(BN(W_o sum_{j: key_of[j] == key_of[i]} softmax_j(q_i . k_j / sqrt(d)) v_j))``."""
    b, _, h, w = x.shape
    q, k = _cbr(x, m.query).flatten(2), _cbr(x, m.key).flatten(2)
    v = conv1x1(x, m.value).flatten(2)
    d = q.shape[1]
    y = torch.zeros(b, v.shape[1], h * w, dtype=x.dtype)
    for i in range(h * w):
        js = [j for j in range(h * w) if key_of[j] == key_of[i]]
        logits = (q[:, :, i : i + 1] * k[:, :, js]).sum(1) / d**0.5
        e = torch.exp(logits - logits.amax(1, keepdim=True))
        y[:, :, i] = ((e / e.sum(1, keepdim=True))[:, None, :] * v[:, :, js]).sum(2)
    return _cbr(y.reshape(b, -1, h, w), m.out)


def _reference(x: torch.Tensor, m: InterlacedSparseAttention) -> torch.Tensor:
    b, c, h, w = x.shape
    ph, pw = m.block
    hp, wp = -(-h // ph) * ph, -(-w // pw) * pw  # padded to whole blocks, the padding split over both sides
    top, left = (hp - h) // 2, (wp - w) // 2
    xp = torch.zeros(b, c, hp, wp, dtype=x.dtype)
    xp[:, :, top : top + h, left : left + w] = x
    pos = [(r, s) for r in range(hp) for s in range(wp)]
    offset = [(r % ph, s % pw) for r, s in pos]  # long range: the same offset inside the P_h x P_w blocks
    block = [(r // ph, s // pw) for r, s in pos]  # short range: the same block
    y = _attention(_attention(xp, m.long_range, offset), m.short_range, block)
    y = y[:, :, top : top + h, left : left + w]
    return _cbr(torch.cat([x, y], 1), m.fuse)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block", [(2, 2), (2, 3), (3, 2), (8, 8), (1, 1)])
def test_isa_matches_the_paper(shape: tuple[int, int, int, int], block: tuple[int, int]) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = InterlacedSparseAttention(c, c // 2, block).double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_long_range_groups_are_interlaced() -> None:
    """The long-range output at a position depends only on positions with the same offset in their block."""
    torch.manual_seed(0)
    sa = SelfAttention2d(4, 2, 4, 4).double()
    randomise_norms(sa)
    sa.eval()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # offset (0, 0) of 2x3 blocks: rows 0, 2, 4 and columns 0, 3
    with torch.no_grad():
        a, b2 = sa(x, (2, 3), long=True), sa(x2, (2, 3), long=True)
    changed = (a - b2).abs().amax(dim=(0, 1)) > 0
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0::2, 0::3] = True
    assert torch.equal(changed, expected)


def test_key_reduction_must_leave_key_channels() -> None:
    text = (
        "name: isa\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: isa, key_reduction: 64}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "isa.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("isa.yaml:") and "stages.0.blocks.1.key_reduction:" in line, line
    assert "key_reduction=64 leaves no key channels of 32" in line, line
