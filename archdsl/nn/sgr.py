"""Symbolic graph reasoning layer (Liang et al. 2018, "Symbolic Graph Reasoning Meets Convolutions", NeurIPS 2018).

The SGR layer (its three modules) on a (B, C, H, W) map X: its N = H*W local features x_i (D^l = C
channels) vote onto M symbolic nodes, the nodes reason over a graph, and the evolved nodes are mapped back:

- local-to-semantic voting: ``a_{i->n} = softmax_n(W^a_n . x_i)`` (a 1x1 conv C -> M, softmax over the M
  nodes at each position) and ``h^ps_n = sum_i a_{i->n} W^ps x_i`` (W^ps: a 1x1 conv C -> D = ``node_dim``);
- graph reasoning: ``H^g = ReLU(A_hat B W^g)`` with ``B = [ReLU(H^ps), S]`` (M x (D + K): the voted features
  beside the node embeddings S), W^g a linear map (D + K) -> D, and the adjacency normalised as the paper
  states (after Kipf & Welling): ``A_hat = Q^-1/2 (A + I) Q^-1/2``, the self-loops added and Q the diagonal
  degree matrix ``Q_nn = sum_m (A + I)_nm`` (row sums; a given graph is used as written, not symmetrised);
- semantic-to-local mapping: the compatibility of each position with each node, ``a_{n->i} = softmax_n(.)``
  over the M nodes, then ``X^sp = A^sp ReLU(H^g) W^sp`` (W^sp: a linear map D -> C; ReLU(H^g) = H^g, as H^g
  leaves a ReLU), and the output ``X + ReLU(X^sp)``.

The compatibility is ``compatibility``:

- ``concat`` (the paper): ``W^s [h^g_n; x_i]`` with W^s of size D + C -> 1. The x_i half adds the same logit to
  every node of position i, so the softmax over the nodes cancels it: as written in the paper, the mapping
  weights do not depend on the position, and every position receives the same mixture of node features;
- ``bilinear`` (not in the paper): ``x_i^T W^s h^g_n`` with W^s of size D -> C, so that each position weighs
  the nodes by its own feature.

Deviations from the paper: the node embeddings S (M x K, K = ``embedding_dim``, 0 for none) are learned
parameters drawn from a standard normal, instead of the word vectors of the concepts (no word vectors are
available offline); the adjacency is either given (the edge weights of a graph over the nodes, which must be
>= 0 so that every degree is >= 1) or learned as ``A = softplus(P)`` with P an M x M parameter starting at
zero (nonnegative, so the degree normalisation stays defined; the paper's graph is a fixed knowledge graph).
The maps W^a, W^ps, W^g, W^s and W^sp have no bias (the paper writes them as matrices); the votes are summed
over the positions without normalisation, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SGR_COMPATIBILITY", "SymbolicGraphReasoning"]

SGR_COMPATIBILITY = ("concat", "bilinear")


class SymbolicGraphReasoning(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    edges: torch.Tensor
    """The given adjacency A (M x M), a buffer made from the constructor argument (absent when learned)."""

    def __init__(
        self,
        channels: int,
        nodes: int,
        node_dim: int,
        embedding_dim: int,
        adjacency: list[list[float]] | None,
        compatibility: str,
    ) -> None:
        super().__init__()
        if compatibility not in SGR_COMPATIBILITY:
            raise ValueError(f"compatibility must be one of {SGR_COMPATIBILITY}, got {compatibility!r}")
        if adjacency is not None and (len(adjacency) != nodes or any(len(row) != nodes for row in adjacency)):
            raise ValueError(f"adjacency must be a {nodes} x {nodes} matrix (nodes={nodes})")
        self.compatibility = compatibility
        self.vote = nn.Conv2d(channels, nodes, 1, bias=False)  # W^a: the voting logits
        self.transform = nn.Conv2d(channels, node_dim, 1, bias=False)  # W^ps
        self.embedding = nn.Parameter(torch.randn(nodes, embedding_dim)) if embedding_dim else None  # S
        self.gcn = nn.Linear(node_dim + embedding_dim, node_dim, bias=False)  # W^g
        self.edge_logits = nn.Parameter(torch.zeros(nodes, nodes)) if adjacency is None else None  # A = softplus(P)
        if adjacency is not None:
            self.register_buffer("edges", torch.tensor(adjacency, dtype=torch.float32), persistent=False)
        w_s = (node_dim + channels, 1) if compatibility == "concat" else (node_dim, channels)
        self.compat = nn.Linear(*w_s, bias=False)  # W^s
        self.project = nn.Linear(node_dim, channels, bias=False)  # W^sp

    def normalised_adjacency(self) -> torch.Tensor:
        """``Q^-1/2 (A + I) Q^-1/2`` (M x M), Q the row sums of ``A + I``."""
        a = F.softplus(self.edge_logits) if self.edge_logits is not None else self.edges
        a = a + torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        d = a.sum(dim=1).rsqrt()  # (M,): Q^-1/2
        return d[:, None] * a * d[None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        votes = self.vote(x)
        votes = votes.reshape(b, votes.shape[1], h * w).softmax(dim=1)  # a_{i->n}: (B, M, N), over the nodes
        feats = self.transform(x)
        feats = feats.reshape(b, feats.shape[1], h * w)  # W^ps x_i: (B, D, N)
        nodes = (votes @ feats.transpose(1, 2)).relu()  # ReLU(H^ps): (B, M, D)
        if self.embedding is not None:
            emb = self.embedding.expand(b, -1, -1)  # S: (B, M, K)
            nodes = torch.cat([nodes, emb], dim=2)  # B = [ReLU(H^ps), S]: (B, M, D + K)
        evolved = (self.normalised_adjacency() @ self.gcn(nodes)).relu()  # H^g: (B, M, D)
        local = x.reshape(b, c, h * w).transpose(1, 2)  # x_i: (B, N, C)
        if self.compatibility == "concat":  # W^s [h_n; x_i] = W^s_h h_n + W^s_x x_i
            w_s = self.compat.weight.t()  # (D + C, 1)
            d = evolved.shape[2]
            logits = (evolved @ w_s[:d]).transpose(1, 2) + local @ w_s[d:]  # (B, 1, M) + (B, N, 1) -> (B, N, M)
        else:  # x_i^T W^s h_n
            logits = local @ self.compat(evolved).transpose(1, 2)  # (B, N, C) @ (B, C, M) -> (B, N, M)
        mapping = logits.softmax(dim=2)  # a_{n->i}: over the nodes
        y = mapping @ self.project(evolved)  # A^sp H^g W^sp: (B, N, C)
        return x + y.transpose(1, 2).reshape(b, c, h, w).relu()
