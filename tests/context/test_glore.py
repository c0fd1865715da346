"""Global reasoning unit against Chen et al. 2019 eq. 2-4 and Fig. 3, written per node and state in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.glore import GloRe
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _reference(x: torch.Tensor, m: GloRe, normalize: bool) -> torch.Tensor:
    b, _, h, w = x.shape
    xs = conv1x1(x, m.phi).flatten(2)  # phi(X): (B, C', L)
    bp = conv1x1(x, m.theta).flatten(2)  # B: (B, N, L)
    nodes, states, length = bp.shape[1], xs.shape[1], xs.shape[2]
    # eq. 2: v_i = sum_j b_ij x_j, node i's feature over the C' states
    v = torch.stack([(bp[:, i : i + 1, :] * xs).sum(2) for i in range(nodes)], dim=1)  # (B, N, C')
    if normalize:
        v = v / length
    a = m.node_conv.weight[:, :, 0]  # (N, N): node-wise, the identity added (I - A_g with A_g = -a)
    wg = m.state_conv.weight[:, :, 0]  # (C', C'): state-wise W_g
    hid = torch.empty_like(v)
    for i in range(nodes):
        hid[:, i, :] = v[:, i, :] + (a[i].view(1, nodes, 1) * v).sum(1) + m.node_conv.bias[i]
    hid = torch.relu(hid)
    z = torch.empty_like(v)  # Z = ReLU((I - A_g) V) W_g, (B, N, C')
    for s in range(states):
        z[:, :, s] = (hid * wg[s].view(1, 1, states)).sum(2)
    # eq. 4: y_j = sum_i b_ij z_i, back to the L positions
    y = torch.stack([(bp[:, :, j : j + 1] * z).sum(1) for j in range(length)], dim=2)  # (B, C', L)
    return x + bn_eval(conv1x1(y.reshape(b, states, h, w), m.extend), m.norm)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("states", "nodes"), [(0.5, 0.25), (1.0, 0.5), (0.25, 0.75)])
@pytest.mark.parametrize("normalize", [False, True])
def test_glore_matches_the_paper(
    shape: tuple[int, int, int, int], states: float, nodes: float, normalize: bool
) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = GloRe(c, int(states * c), int(nodes * c), normalize, zero_init=False).double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, normalize), x)


def test_zero_init_starts_as_identity() -> None:
    m = GloRe(8, 4, 2, False, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def test_one_projection_maps_both_ways() -> None:
    """B projects to the nodes and back (the paper reuses it): one conv, theta, and no second projection."""
    m = GloRe(8, 4, 2, False, zero_init=False)
    names = {n for n, _ in m.named_parameters()}
    assert names == {
        "phi.weight",
        "phi.bias",
        "theta.weight",
        "theta.bias",
        "node_conv.weight",
        "node_conv.bias",
        "state_conv.weight",
        "extend.weight",
        "norm.weight",
        "norm.bias",
    }


def test_paper_default_widths() -> None:
    text = (
        "name: glore\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: glore}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    plan = archdsl.plan_model(spec_from_text(text))
    (node,) = [n for n in plan.nodes() if n.type == "glore"]
    assert node.recipe.kwargs["states"] == 16 and node.recipe.kwargs["nodes"] == 8  # C' = C/2, N = C/4


def test_state_width_must_be_whole() -> None:
    text = (
        "name: glore\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: glore, states: 0.3}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "glore.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("glore.yaml:") and "stages.0.blocks.1.states:" in line, line
    assert "state channels C' = states * C must be a positive integer, got 0.3*32=9.6" in line, line
