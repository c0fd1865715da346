"""Symbolic graph reasoning layer against Liang et al. 2018 (local-to-semantic voting, graph reasoning over the
degree-normalised adjacency, semantic-to-local mapping), written per node and position in float64."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import archdsl
from archdsl.compiler.count import measure
from archdsl.errors import ShapeError, SpecError
from archdsl.nn.sgr import SGR_COMPATIBILITY, SymbolicGraphReasoning
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, assert_exports_and_runs_channels_last, check, conv1x1

NODES = 4
RING = [[1.0 if abs(i - j) in (1, NODES - 1) else 0.0 for j in range(NODES)] for i in range(NODES)]
WEIGHTED = [[0.0, 2.5, 0.0, 0.25], [0.5, 0.0, 1.0, 0.0], [0.0, 3.0, 0.0, 0.0], [1.5, 0.0, 0.75, 0.0]]  # directed
ADJACENCIES = {"learned": None, "ring": RING, "weighted": WEIGHTED}


def _softmax(logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """``exp(l_n) / sum_m exp(l_m)`` over a list of (B, ...) logits."""
    e = [torch.exp(t) for t in logits]
    total = sum(e[1:], e[0])
    return [t / total for t in e]


def _normalised(a: torch.Tensor) -> torch.Tensor:
    """``Q^-1/2 (A + I) Q^-1/2`` with ``Q_nn = sum_m (A + I)_nm``, entry by entry."""
    m = a.shape[0]
    ae = [[a[i, j] + (1.0 if i == j else 0.0) for j in range(m)] for i in range(m)]
    q = [sum(row) for row in ae]
    return torch.stack([torch.stack([ae[i][j] / torch.sqrt(q[i] * q[j]) for j in range(m)]) for i in range(m)])


def _reference(x: torch.Tensor, m: SymbolicGraphReasoning) -> torch.Tensor:
    b, c, h, w = x.shape
    n = h * w
    xs = x.reshape(b, c, n)  # x_i: (B, C, N)
    vote = conv1x1(x, m.vote).reshape(b, -1, n)  # W^a_n . x_i: (B, M, N)
    feats = conv1x1(x, m.transform).reshape(b, -1, n)  # W^ps x_i: (B, D, N)
    nodes, d = vote.shape[1], feats.shape[1]
    a_ps = torch.stack(_softmax([vote[:, k] for k in range(nodes)]), dim=1)  # a_{i->n}, softmax over the nodes
    h_ps = [(a_ps[:, k : k + 1, :] * feats).sum(2) for k in range(nodes)]  # h^ps_n = sum_i a_{i->n} W^ps x_i
    rows = [torch.relu(v) for v in h_ps]  # B = [ReLU(H^ps), S], one row per node
    if m.embedding is not None:
        rows = [torch.cat([r, m.embedding[k].expand(b, -1)], dim=1) for k, r in enumerate(rows)]
    bw = [r @ m.gcn.weight.t() for r in rows]  # B W^g, per node: (B, D)
    adjacency = torch.log1p(torch.exp(m.edge_logits)) if m.edge_logits is not None else m.edges
    a_hat = _normalised(adjacency)
    h_g = [torch.relu(sum(a_hat[i, j] * bw[j] for j in range(nodes))) for i in range(nodes)]  # (B, D) per node
    ws = m.compat.weight
    logits = []  # per node: (B, N)
    for k in range(nodes):
        if m.compatibility == "concat":  # W^s [h_n; x_i]
            logits.append((h_g[k] * ws[0, :d]).sum(1, keepdim=True) + (ws[0, d:].view(1, c, 1) * xs).sum(1))
        else:  # x_i^T W^s h_n
            q = h_g[k] @ ws.t()  # (B, C)
            logits.append((q.view(b, c, 1) * xs).sum(1))
    a_sp = _softmax(logits)  # a_{n->i}, softmax over the nodes
    values = [h @ m.project.weight.t() for h in h_g]  # H^g W^sp, per node: (B, C)
    y = sum(a_sp[k].view(b, 1, n) * values[k].view(b, c, 1) for k in range(nodes))  # (B, C, N)
    return x + torch.relu(y.reshape(b, c, h, w))


def _module(c: int, adjacency: str, compatibility: str, embedding_dim: int) -> SymbolicGraphReasoning:
    torch.manual_seed(0)
    m = SymbolicGraphReasoning(c, NODES, 6, embedding_dim, ADJACENCIES[adjacency], compatibility).double().eval()
    if m.edge_logits is not None:
        with torch.no_grad():
            m.edge_logits.normal_()  # a non-uniform learned graph
    return m


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("adjacency", list(ADJACENCIES))
@pytest.mark.parametrize("compatibility", SGR_COMPATIBILITY)
@pytest.mark.parametrize("embedding_dim", [0, 5])
def test_sgr_matches_the_paper(
    shape: tuple[int, int, int, int], adjacency: str, compatibility: str, embedding_dim: int
) -> None:
    m = _module(shape[1], adjacency, compatibility, embedding_dim)
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_ring_adjacency_is_normalised_by_the_degrees() -> None:
    """A ring: every node has degree 2 + 1 (self-loop), so A_hat = (A + I) / 3."""
    m = SymbolicGraphReasoning(8, NODES, 6, 0, RING, "concat").double()
    expected = (torch.tensor(RING, dtype=torch.float64) + torch.eye(NODES, dtype=torch.float64)) / 3
    torch.testing.assert_close(m.normalised_adjacency(), expected, rtol=0, atol=1e-15)
    weighted = SymbolicGraphReasoning(8, NODES, 6, 0, WEIGHTED, "concat").double().normalised_adjacency()
    degree = [1 + sum(row) for row in WEIGHTED]
    assert math.isclose(weighted[0, 1].item(), 2.5 / math.sqrt(degree[0] * degree[1]), rel_tol=1e-12)


def test_learned_adjacency_is_a_parameter_and_a_given_one_is_not() -> None:
    learned = SymbolicGraphReasoning(8, NODES, 6, 3, None, "concat")
    given = SymbolicGraphReasoning(8, NODES, 6, 3, RING, "concat")
    assert learned.edge_logits is not None and learned.edge_logits.shape == (NODES, NODES)
    assert given.edge_logits is None and "edges" not in given.state_dict()  # the spec holds it
    assert sum(p.numel() for p in learned.parameters()) - sum(p.numel() for p in given.parameters()) == NODES**2
    assert given.embedding is not None and given.embedding.shape == (NODES, 3)


def test_paper_compatibility_gives_every_position_the_same_mixture() -> None:
    """The paper's ``W^s [h_n; x_i]``: the x_i half is the same for every node, so the softmax over the nodes
    cancels it and the block adds one vector to every position (the documented consequence)."""
    m = _module(8, "ring", "concat", 3)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        added = (m(x) - x).flatten(2)
    torch.testing.assert_close(added, added[:, :, :1].expand_as(added), rtol=0, atol=1e-12)
    bilinear = _module(8, "ring", "bilinear", 3)
    with torch.no_grad():
        added = (bilinear(x) - x).flatten(2)
    assert (added - added[:, :, :1]).abs().max() > 1e-3


def _spec(block: str, name: str = "sgr.yaml") -> archdsl.spec.ModelSpec:
    text = (
        "name: sgr\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages:\n  - channels: 32\n    blocks:\n      - {type: bottleneck, width: 8}\n"
        + block
        + "head: {type: classifier, num_classes: 4}\n"
    )
    return spec_from_text(text, name)


@pytest.mark.parametrize("adjacency", ["learned", RING])
@pytest.mark.parametrize("compatibility", SGR_COMPATIBILITY)
@pytest.mark.parametrize("embedding_dim", [0, 8])
def test_planned_counts_equal_the_built_module(adjacency: object, compatibility: str, embedding_dim: int) -> None:
    block = {
        "type": "sgr",
        "nodes": NODES,
        "node_dim": 12,
        "embedding_dim": embedding_dim,
        "adjacency": adjacency,
        "compatibility": compatibility,
    }
    spec = _spec("      - " + yaml.safe_dump(block, default_flow_style=True, width=1000))
    plan = archdsl.plan_model(spec)
    got = measure(archdsl.build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params and got.flops == plan.flops


def _problem(block: str, error: type[Exception]) -> str:
    with pytest.raises(error) as err:
        archdsl.plan_model(_spec(block))
    (problem,) = err.value.problems  # type: ignore[attr-defined]
    return str(problem)


def test_adjacency_with_the_wrong_number_of_rows_is_located() -> None:
    block = "      - type: sgr\n        nodes: 3\n        adjacency: [[0, 1], [1, 0]]\n"
    assert _problem(block, ShapeError) == (
        "sgr.yaml:10:9: stages.0.blocks.1.adjacency: the adjacency must be square with nodes=3 rows, got 2 rows"
    )


def test_adjacency_row_of_the_wrong_length_is_located() -> None:
    block = "      - type: sgr\n        nodes: 2\n        adjacency:\n          - [0, 1]\n          - [1, 0, 1]\n"
    assert _problem(block, ShapeError) == (
        "sgr.yaml:12:13: stages.0.blocks.1.adjacency.1: row 1 of the adjacency must have nodes=2 entries, got 3"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (".nan", "must be a finite number, got nan"),
        (".inf", "must be a finite number, got inf"),
        ("-1.0", "must be greater than or equal to 0, got -1.0"),
    ],
)
def test_non_finite_or_negative_edge_weight_is_located(value: str, message: str) -> None:
    block = f"      - type: sgr\n        nodes: 2\n        adjacency:\n          - [0, 1]\n          - [1, {value}]\n"
    assert _problem(block, SpecError) == f"sgr.yaml:12:17: stages.0.blocks.1.adjacency.1.1: {message}"


def test_misspelt_learned_suggests() -> None:
    assert _problem("      - {type: sgr, adjacency: learnd}\n", SpecError) == (
        "sgr.yaml:8:32: stages.0.blocks.1.adjacency: unknown value 'learnd' (did you mean 'learned'?); "
        "expected one of: learned"
    )


@pytest.mark.parametrize("adjacency", list(ADJACENCIES))
@pytest.mark.parametrize("compatibility", SGR_COMPATIBILITY)
def test_every_variant_exports_with_a_dynamic_batch_and_runs_channels_last(adjacency: str, compatibility: str) -> None:
    torch.manual_seed(0)
    m = SymbolicGraphReasoning(8, NODES, 6, 3, ADJACENCIES[adjacency], compatibility).eval()
    assert_exports_and_runs_channels_last(m, (2, 8, 5, 7))
