"""Symbolic graph reasoning layer (Liang et al. 2018, NeurIPS; ``archdsl.nn.sgr.SymbolicGraphReasoning``): a
residual context block that keeps the map, placed between the conv blocks of a stage."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from archdsl.kinds import BLOCKS, Kind, type_name
from archdsl.plan import cost
from archdsl.plan.rules import require, require_context_block
from archdsl.plan.shapes import Ctx, Node, make_node
from archdsl.spec.base import BlockSpecBase

__all__ = ["Adjacency", "SGRSpec"]

EdgeWeight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
"""One edge weight of a given graph: finite and >= 0 (every degree of ``A + I`` is then >= 1)."""


def _adjacency_tag(value: Any) -> str:
    return "learned" if isinstance(value, str) else "matrix"


Adjacency = Annotated[
    Annotated[Literal["learned"], Tag("learned")] | Annotated[list[list[EdgeWeight]], Tag("matrix")],
    Discriminator(_adjacency_tag),
]
"""``learned``, or the M x M edge weights of a graph over the nodes (rows: lists of floats)."""


class SGRSpec(BlockSpecBase):
    """x voted onto M nodes, ``H^g = ReLU(A_hat [ReLU(H^ps), S] W^g)``, ``x + ReLU(A^sp H^g W^sp)``; keeps C, map."""

    type: Literal["sgr"]
    nodes: int = Field(16, ge=1, le=1024)
    """Symbolic nodes M (the paper: the concepts of its knowledge graph)."""
    node_dim: int = Field(64, ge=1, le=4096)
    """Node feature width D: the votes, the graph reasoning and the mapping back run at this width."""
    embedding_dim: int = Field(32, ge=0, le=1024)
    """Width K of the learned node embeddings S beside the voted features (the paper: word vectors); 0: none."""
    adjacency: Adjacency = "learned"
    """``learned`` (``softplus`` of an M x M parameter) or a graph's M x M edge weights, finite and >= 0."""
    compatibility: Literal["concat", "bilinear"] = "concat"
    """Mapping back: ``concat`` the paper's ``W^s [h_n; x_i]`` (x_i's half cancels), ``bilinear`` ``x_i^T W^s h_n``."""


def _plan(spec: SGRSpec, ctx: Ctx) -> Node:
    require_context_block(ctx, spec.type)
    c, h, w = ctx.in_shape
    m, d, k = spec.nodes, spec.node_dim, spec.embedding_dim
    given = None if isinstance(spec.adjacency, str) else [list(row) for row in spec.adjacency]
    if given is not None:
        where = ctx.path + ".adjacency"
        require(len(given) == m, where, f"the adjacency must be square with nodes={m} rows, got {len(given)} rows")
        for i, row in enumerate(given):
            require(
                len(row) == m, f"{where}.{i}", f"row {i} of the adjacency must have nodes={m} entries, got {len(row)}"
            )
    n, hw = h * w, (h, w)
    total = (
        cost.conv(c, m, 1, hw)  # W^a: voting logits
        + cost.conv(c, d, 1, hw)  # W^ps
        + cost.matmul(m, n, d)  # H^ps = A^ps^T (W^ps X)
        + cost.param(m, k)  # S
        + cost.linear(d + k, d, m, bias=False)  # B W^g
        + cost.matmul(m, m, d)  # A_hat (B W^g)
        + (cost.param(m, m) if given is None else cost.Cost())  # learned adjacency
        + cost.linear(d, c, m, bias=False)  # H^g W^sp
        + cost.matmul(n, m, c)  # A^sp (H^g W^sp)
    )
    if spec.compatibility == "concat":
        total = total + cost.param(d + c) + cost.matmul(m, d, 1) + cost.matmul(n, c, 1)  # W^s_h h_n + W^s_x x_i
    else:
        total = total + cost.linear(d, c, m, bias=False) + cost.matmul(n, c, m)  # x_i^T (W^s h_n)
    kwargs = {
        "channels": c,
        "nodes": m,
        "node_dim": d,
        "embedding_dim": k,
        "adjacency": given,
        "compatibility": spec.compatibility,
    }
    return make_node(ctx, "block", spec.type, ctx.in_shape, "archdsl.nn.sgr.SymbolicGraphReasoning", kwargs, total)


_RING = [[1.0 if abs(i - j) in (1, 3) else 0.0 for j in range(4)] for i in range(4)]  # a ring over 4 nodes
_EXAMPLE = {
    "channels": 32,
    "stride": 2,
    "blocks": [
        {"type": "bottleneck", "width": 8},
        {"type": type_name(SGRSpec), "nodes": 4, "node_dim": 16, "embedding_dim": 8, "adjacency": _RING},
    ],
}
BLOCKS.add(Kind.of(SGRSpec, _plan, example=_EXAMPLE))
