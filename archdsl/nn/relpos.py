"""Factorised 2-D relative-position logits (Shaw et al. 2018; as used by BoTNet and HaloNet).

For a query at full-resolution position (q_y, q_x) and a key at (k_y, k_x) the logit bias is
``q · R_h[k_y - q_y] + q · R_w[k_x - q_x]`` with two learned tables ``R_h`` of shape (2*L_h-1, d) and
``R_w`` of shape (2*L_w-1, d), shared by all heads (Srinivas et al. 2021, arXiv:2101.11605; Vaswani et
al. 2021, arXiv:2103.12731). Row ``L-1`` of a table is offset 0. The query and key positions are fixed at
construction, so the rows each (query, key) pair reads are precomputed index buffers; the forward pass
gathers the rows once and contracts them with the queries by ``einsum`` (two batched matrix products).
Tables are initialised truncated-normal with std ``d**-0.5``.

Halo and global attention add this bias to their logits. On the devices in :data:`FUSED_DEVICES` (CUDA)
they hand it to the fused kernel through :func:`attend_fused`: ``F.scaled_dot_product_attention`` with 4-D
(batch, heads, tokens, dim) operands whose last dimension is contiguous and a multiple of 8, and the bias as
an additive ``attn_mask`` in the query's dtype (bf16 under autocast), which is what the memory-efficient
kernel takes (flash takes no mask; cuDNN's kernel has no gradient for one). Elsewhere they run their eager
CPU formulation; :func:`fused_path` makes the choice, per tensor, by its device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["FUSED_DEVICES", "RelativePosition2d", "attend_fused", "bias_backends", "fused_path", "head_aligned"]

FUSED_DEVICES: frozenset[str] = frozenset({"cuda"})
"""Device types on which halo and global attention take the fused ``scaled_dot_product_attention`` path (a test
adds ``cpu`` to run that path, argument for argument, on CPU tensors)."""

HEAD_ALIGN = 8
"""The memory-efficient kernel needs head dims divisible by 8 (bf16) or 4 (float32) on sm80+: q/k/v are
zero-padded to a multiple of 8, which changes no dot product and adds output columns that are cut off."""


def fused_path(x: torch.Tensor) -> bool:
    """Whether attention over ``x`` takes the fused kernel (its device type is in :data:`FUSED_DEVICES`)."""
    return x.device.type in FUSED_DEVICES


def head_aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` (..., d) as a contiguous tensor whose last dimension is zero-padded to a multiple of 8."""
    pad = -t.shape[-1] % HEAD_ALIGN
    if pad:
        t = F.pad(t, (0, pad))
    return t.contiguous()


def attend_fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T + bias) v`` by ``F.scaled_dot_product_attention`` (scale 1: the caller scaled q, and so
    its position logits); q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv), bias (N, H, Lq, Lk) -> (N, H, Lq, dv).

    q/k/v go in 4-D, contiguous, head dims padded to a multiple of 8 (a no-op for operands the caller already
    laid out so, whose padded value columns then come back for the caller to cut); the bias goes in the query's
    dtype. The kernel is chosen among those that take an additive float mask and differentiate it, the
    memory-efficient one and the math fallback, as far as the caller left them enabled (:func:`bias_backends`).
    """
    dv = v.shape[-1]
    q, k, v = head_aligned(q), head_aligned(k), head_aligned(v)
    with sdpa_kernel(bias_backends()):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
    return out[..., :dv] if out.shape[-1] != dv else out


def bias_backends() -> list[SDPBackend]:
    """The SDPA kernels for a learned additive bias: the memory-efficient kernel (bias gradient included) and the
    math fallback, of those enabled where it is called; never flash (it takes no mask) or cuDNN's attention (first
    on sm90 with a recent cuDNN; it has no bias gradient and refuses a bias that needs one). Under
    ``sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])`` that leaves the efficient kernel alone, so a call it
    cannot take raises instead of falling back. Under ``torch.compile`` both (enabled flags are host state a
    graph cannot read)."""
    if torch.compiler.is_compiling():
        return [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    enabled = {
        SDPBackend.EFFICIENT_ATTENTION: torch.backends.cuda.mem_efficient_sdp_enabled(),
        SDPBackend.MATH: torch.backends.cuda.math_sdp_enabled(),
    }
    return [backend for backend, on in enabled.items() if on]


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

    def factors(self, q: torch.Tensor, table_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The two separable terms, ``q·R_h`` (..., Nq_h, Nq_w, Nk_h) and ``q·R_w`` (..., Nq_h, Nq_w, Nk_w),
        whose broadcast sum over (Nk_h, Nk_w) is the bias; callers fold masks into them before that sum.
        ``table_scale`` multiplies the gathered rows (a caller whose q carries the softmax scale passes its inverse
        to leave the position logits unscaled)."""
        r_h = self.table_h[self.index_h]  # (Nq_h, Nk_h, d)
        r_w = self.table_w[self.index_w]  # (Nq_w, Nk_w, d)
        if table_scale != 1.0:  # on the gathered rows, the smallest operand of the contraction
            r_h, r_w = r_h * table_scale, r_w * table_scale
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
