"""Factorised 2-D relative-position logits (Shaw et al. 2018; as used by BoTNet and HaloNet).

For a query at full-resolution position (q_y, q_x) and a key at (k_y, k_x) the logit bias is
``q · R_h[k_y - q_y] + q · R_w[k_x - q_x]`` with two learned tables ``R_h`` of shape (2*L_h-1, d) and
``R_w`` of shape (2*L_w-1, d), shared by all heads (Srinivas et al. 2021, arXiv:2101.11605; Vaswani et
al. 2021, arXiv:2103.12731). Row ``L-1`` of a table is offset 0. The query and key positions are fixed at
construction, so the rows each (query, key) pair reads are precomputed index buffers; the forward pass
gathers the rows once and contracts them with the queries by ``einsum`` (two batched matrix products).
Tables are initialised truncated-normal with std ``d**-0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["RelativePosition2d"]


def relpos_offsets(queries: Sequence[int], keys: Sequence[int], extent: int) -> torch.Tensor:
    """Table row of every (query, key) pair: ``k - q + extent - 1``, shape (len(queries), len(keys))."""
    rows = [[k - q + extent - 1 for k in keys] for q in queries]
    if any(not 0 <= r < 2 * extent - 1 for row in rows for r in row):
        raise ValueError(f"relative offsets must lie within ±{extent - 1}")
    return torch.tensor(rows, dtype=torch.long)


class RelativePosition2d(nn.Module):
    """Additive logit bias ``q·R_h[k_y - q_y] + q·R_w[k_x - q_x]`` for fixed query and key grids.

    ``extent = (L_h, L_w)`` sizes the tables (2*L_h-1, d) and (2*L_w-1, d). Queries lie on the grid
    ``q_rows x q_cols`` and keys on ``k_rows x k_cols`` (full-resolution coordinates; every offset must lie
    within ±(L-1)). ``forward(q)`` takes q of shape (..., Nq_h, Nq_w, d) and returns (..., Nq, Nk) with
    Nq = Nq_h*Nq_w and Nk = Nk_h*Nk_w, both flattened row-major.
    """

    NO_WEIGHT_DECAY = ("table_h", "table_w")
    """Relative-position tables, embeddings of offsets: trained without weight decay."""

    index_h: torch.Tensor
    index_w: torch.Tensor

    def __init__(
        self,
        head_dim: int,
        extent: tuple[int, int],
        q_rows: Sequence[int],
        q_cols: Sequence[int],
        k_rows: Sequence[int],
        k_cols: Sequence[int],
    ) -> None:
        super().__init__()
        lh, lw = extent
        self.table_h = nn.Parameter(torch.empty(2 * lh - 1, head_dim))
        self.table_w = nn.Parameter(torch.empty(2 * lw - 1, head_dim))
        nn.init.trunc_normal_(self.table_h, std=head_dim**-0.5)
        nn.init.trunc_normal_(self.table_w, std=head_dim**-0.5)
        self.register_buffer("index_h", relpos_offsets(q_rows, k_rows, lh), persistent=False)
        self.register_buffer("index_w", relpos_offsets(q_cols, k_cols, lw), persistent=False)
        self.num_keys = len(k_rows) * len(k_cols)

    def factors(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two separable terms, ``q·R_h`` (..., Nq_h, Nq_w, Nk_h) and ``q·R_w`` (..., Nq_h, Nq_w, Nk_w),
        whose broadcast sum over (Nk_h, Nk_w) is the bias; callers fold masks into them before that sum."""
        r_h = self.table_h[self.index_h]  # (Nq_h, Nk_h, d)
        r_w = self.table_w[self.index_w]  # (Nq_w, Nk_w, d)
        logits_h = torch.einsum("...yxd,ykd->...yxk", q, r_h)  # (..., Nq_h, Nq_w, Nk_h)
        logits_w = torch.einsum("...yxd,xkd->...yxk", q, r_w)  # (..., Nq_h, Nq_w, Nk_w)
        # einsum returns its batched-product layout (strides permuted); in row-major order the broadcast sum
        # of the two, the full (Nq, Nk) bias, comes out contiguous, so its reshape is a view, not a second copy
        return logits_h.contiguous(), logits_w.contiguous()

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        logits_h, logits_w = self.factors(q)
        bias = logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)  # (..., Nq_h, Nq_w, Nk_h, Nk_w)
        nq = q.shape[-3] * q.shape[-2]
        return bias.reshape(*q.shape[:-3], nq, self.num_keys)  # (..., Nq, Nk)

    def extra_repr(self) -> str:
        return f"table_h={tuple(self.table_h.shape)}, table_w={tuple(self.table_w.shape)}"
