"""Local relation layer and LR bottleneck against Hu et al. 2019 (eq. 2, appearance composability, geometry
prior, channel sharing), written per position and per window offset in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.local_relation import LR_COMPOSABILITY, LocalRelation, LocalRelationBottleneck
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _geometry(m: LocalRelation, dy: int, dx: int) -> torch.Tensor:
    """``W_2 ReLU(W_1 (dy, dx) + b_1) + b_2``: one prior per group."""
    l1, l2 = m.geometry[0], m.geometry[2]
    d = torch.tensor([float(dy), float(dx)], dtype=l1.weight.dtype)
    return l2.weight @ torch.relu(l1.weight @ d + l1.bias) + l2.bias


def _relation(x: torch.Tensor, m: LocalRelation) -> torch.Tensor:
    h, w = x.shape[2:]
    r, g, mm = m.k // 2, m.groups, m.m
    q, k = conv1x1(x, m.query), conv1x1(x, m.key)  # (B, G, H, W)
    y = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            keys = [
                (i + dy, j + dx, dy, dx)
                for dy in range(-r, r + 1)
                for dx in range(-r, r + 1)
                if 0 <= i + dy < h and 0 <= j + dx < w
            ]  # the window inside the map
            logits = []
            for ii, jj, dy, dx in keys:
                qi, kj = q[:, :, i, j], k[:, :, ii, jj]  # (B, G)
                phi = qi * kj if m.composability == "multiplication" else -((qi - kj) ** 2)
                logits.append(phi + _geometry(m, dy, dx))
            e = torch.exp(torch.stack(logits, dim=2))  # (B, G, |window|)
            wgt = e / e.sum(2, keepdim=True)
            for t, (ii, jj, _, _) in enumerate(keys):
                for gg in range(g):
                    ch = slice(gg * mm, (gg + 1) * mm)
                    y[:, ch, i, j] += wgt[:, gg, t : t + 1] * x[:, ch, ii, jj]
    return y


def _bottleneck(x: torch.Tensor, m: LocalRelationBottleneck) -> torch.Tensor:
    t = torch.relu(bn_eval(conv1x1(x, m.reduce[0]), m.reduce[1]))
    t = torch.relu(bn_eval(_relation(t, m.relation), m.norm))
    return torch.relu(x + bn_eval(conv1x1(t, m.expand[0]), m.expand[1]))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("k", "group_channels"), [(3, 2), (5, 4), (7, 4)])
@pytest.mark.parametrize("composability", LR_COMPOSABILITY)
def test_local_relation_layer_matches_the_paper(
    shape: tuple[int, int, int, int], k: int, group_channels: int, composability: str
) -> None:
    torch.manual_seed(0)
    m = LocalRelation(shape[1], k, group_channels, 3, composability).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _relation(x, m), x)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", [1, 2])
def test_lr_bottleneck_matches_the_paper(shape: tuple[int, int, int, int], reduction: int) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = LocalRelationBottleneck(c, c // reduction, 7, 2, 4, "multiplication").double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _bottleneck(x, m), x)


def test_out_of_map_keys_get_no_weight() -> None:
    """A constant map stays constant to the border: the window's weights sum to one over in-map keys only
    (zero padding without the mask would pull border pixels towards 0)."""
    torch.manual_seed(0)
    m = LocalRelation(8, 7, 4, 4, "multiplication").double().eval()
    x = torch.randn(1, 8, 1, 1, dtype=torch.float64).expand(2, 8, 5, 6).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(m(x), x, rtol=0, atol=1e-12)


def test_channel_sharing_and_parameter_count() -> None:
    m = LocalRelation(32, 7, 8, 16, "multiplication")
    assert m.groups == 4 and m.query.weight.shape == (4, 32, 1, 1) and m.key.weight.shape == (4, 32, 1, 1)
    assert sum(p.numel() for p in m.parameters()) == 2 * 32 * 4 + (2 * 16 + 16) + (16 * 4 + 4)


def test_width_must_be_divisible_by_the_channels_per_group() -> None:
    text = (
        "name: lr\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8},"
        " {type: local_relation, channels_per_group: 3}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "lr.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("lr.yaml:") and "stages.0.blocks.1.channels_per_group:" in line, line
    assert "the LR layer's width C / reduction=8 must be divisible by channels_per_group=3" in line, line
