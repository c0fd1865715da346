"""PSANet block against Zhao et al. 2018 (over-completed masks, collect eq. 8 and distribute eq. 9), written per
position pair in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.psanet import PSA_MODES, PointwiseSpatialAttention
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _conv_bn_relu(x: torch.Tensor, seq: torch.nn.Module) -> torch.Tensor:
    """``ReLU(BN(conv_k(x)))``, zero padding k // 2, as a sum over the k x k kernel offsets."""
    conv, bn = seq[0], seq[1]
    k = conv.weight.shape[-1]
    p = k // 2
    b, _, h, w = x.shape
    xp = torch.zeros(b, x.shape[1], h + 2 * p, w + 2 * p, dtype=x.dtype)
    xp[:, :, p : p + h, p : p + w] = x
    y = torch.zeros(b, conv.weight.shape[0], h, w, dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            y = y + torch.einsum("oc,bchw->bohw", conv.weight[:, :, u, v], xp[:, :, u : u + h, v : v + w])
    return torch.relu(bn_eval(y, bn))


def _branch(x_in: torch.Tensor, br: torch.nn.Module, distribute: bool) -> torch.Tensor:
    b, _, h, w = x_in.shape
    x = _conv_bn_relu(x_in, br.reduce)
    masks = conv1x1(_conv_bn_relu(x, br.adapt), br.mask).reshape(b, 2 * h - 1, 2 * w - 1, h, w)  # h_i at i
    z = torch.zeros_like(x)
    for ri in range(h):
        for ci in range(w):
            for rj in range(h):
                for cj in range(w):
                    if distribute:  # a^d_{j,i}: j's mask centred at j, read at i
                        a = masks[:, h - 1 + ri - rj, w - 1 + ci - cj, rj, cj]
                    else:  # a^c_{i,j}: i's mask centred at i, read at j
                        a = masks[:, h - 1 + rj - ri, w - 1 + cj - ci, ri, ci]
                    z[:, :, ri, ci] += a[:, None] * x[:, :, rj, cj] / (h * w)
    return z


def _reference(x: torch.Tensor, m: PointwiseSpatialAttention, mode: str) -> torch.Tensor:
    dist = {"collect": [False], "distribute": [True], "bi": [False, True]}[mode]
    outs = [_branch(x, br, d) for br, d in zip(m.branches, dist, strict=True)]
    return _conv_bn_relu(torch.cat([x, _conv_bn_relu(torch.cat(outs, dim=1), m.project)], dim=1), m.fuse)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", PSA_MODES)
@pytest.mark.parametrize("fusion_kernel", [1, 3])
def test_psanet_matches_the_paper(shape: tuple[int, int, int, int], mode: str, fusion_kernel: int) -> None:
    torch.manual_seed(0)
    _, c, h, w = shape
    m = PointwiseSpatialAttention(c, c // 2, h, w, mode, fusion_kernel).double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, mode), x)


def test_masks_are_over_complete_and_the_module_is_tied_to_its_map() -> None:
    m = PointwiseSpatialAttention(8, 4, 5, 7, "bi", 3)
    assert all(br.mask.out_channels == 9 * 13 for br in m.branches)
    with pytest.raises(ValueError, match="built for 5x7 maps, got 7x5"):
        m(torch.randn(2, 8, 7, 5))


def test_collect_and_distribute_differ() -> None:
    """The two branches read the masks transposed: the same weights give different outputs."""
    torch.manual_seed(0)
    c, d = PointwiseSpatialAttention(8, 4, 4, 5, "collect", 1), PointwiseSpatialAttention(8, 4, 4, 5, "distribute", 1)
    d.load_state_dict(c.state_dict())
    x = torch.randn(2, 8, 4, 5)
    with torch.no_grad():
        assert not torch.allclose(c.eval()(x), d.eval()(x))


def test_a_map_too_large_for_the_masks_is_refused() -> None:
    text = (
        "name: psa\ninput: {channels: 3, size: 160}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, stride: 2, blocks: [{type: bottleneck, width: 8}, {type: psanet}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "psa.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("psa.yaml:") and "stages.0.blocks.1:" in line, line
    assert "(2H-1)(2W-1)=25281 mask channels per position on its 80x80 feature map" in line, line
    assert "more than 16384; place it where the map is at most 64x64" in line, line
