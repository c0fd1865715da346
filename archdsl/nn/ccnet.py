"""Recurrent criss-cross attention (Huang et al. 2019, "CCNet: Criss-Cross Attention for Semantic Segmentation",
arXiv:1811.11721).

Criss-cross attention (paper section 3.2, eq. 1-2): each position u = (i, j) of a (B, C, H, W) map attends to the
H + W - 1 positions of its column and its row, itself counted once:
``x'_u = gamma * sum_{p in column(u) + row(u)} softmax_p(q_u . k_p) v_p + x_u``. q and k are 1x1 convs to ``inner``
channels (the paper: C / 8), v a 1x1 conv to C, all with bias. The softmax runs jointly over the column's and the
row's energies; as in the authors' code, the position itself is masked (-inf) out of the column energies, so it
enters once, through its row. The aggregate is scaled by a learnable scalar gamma that starts at zero (the
authors' code), so the module starts as the identity.

Recurrent criss-cross attention (RCCA, paper section 3.3): the module, residual included, is applied
``recurrence`` times with one set of weights (the paper: R = 2, after which every position has reached every
other: u -> (i, j') -> (i', j') for any (i', j')).

Dense torch ops, no custom CUDA kernel and no N x N matrix: the column energies are one batched product per
column ((H x C') @ (C' x H)), the row energies one per row ((W x C') @ (C' x W)), and the aggregation the same
with C value channels: O(N (H + W) C) per step.

Deviation from the paper: the block is the recurrent criss-cross attention alone, at the block's C channels.
The paper's RCCA segmentation module (authors' code ``RCCAModule``) reduces the backbone's 2048 channels with a
3x3 conv + BN (to C / 4) before the attention, applies a 3x3 conv + BN after it, concatenates the result with its
input and fuses them with a 3x3 conv + BN (then dropout and a 1x1 classifier); those are left out: inside a
backbone the conv blocks before and after the context block do that work, and without them the block is a
residual context block that keeps the map.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.qkv import QueryKeyValue

__all__ = ["CrissCrossAttention", "RecurrentCrissCross"]


class CrissCrossAttention(QueryKeyValue):
    """``x + gamma * (criss-cross aggregate)``: (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        q, k, v = self.project(x)  # (B, C', H, W), (B, C', H, W), (B, C, H, W)
        col = q.permute(0, 3, 2, 1) @ k.permute(0, 3, 1, 2)  # (B, W, H, C') @ (B, W, C', H) -> (B, W, H, H)
        self_pos = torch.eye(h, dtype=torch.bool, device=x.device)  # (H, H): query row i == key row i'
        col = col.masked_fill(self_pos, float("-inf"))  # the position itself enters through its row only
        row = q.permute(0, 2, 3, 1) @ k.permute(0, 2, 1, 3)  # (B, H, W, C') @ (B, H, C', W) -> (B, H, W, W)
        attn = torch.cat([col.transpose(1, 2), row], dim=-1).softmax(dim=-1)  # (B, H, W, H + W): jointly
        a_col = attn[..., :h].transpose(1, 2)  # (B, W, H, H)
        a_row = attn[..., h:]  # (B, H, W, W)
        out_col = a_col @ v.permute(0, 3, 2, 1)  # (B, W, H, H) @ (B, W, H, C) -> (B, W, H, C)
        out_row = a_row @ v.permute(0, 2, 3, 1)  # (B, H, W, W) @ (B, H, W, C) -> (B, H, W, C)
        agg = out_col.permute(0, 3, 2, 1) + out_row.permute(0, 3, 1, 2)  # (B, C, H, W)
        return x + self.gamma * agg


class RecurrentCrissCross(nn.Module):
    """One :class:`CrissCrossAttention` applied ``recurrence`` times: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, inner: int, recurrence: int) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"recurrence must be at least 1, got {recurrence}")
        self.recurrence = recurrence
        self.attention = CrissCrossAttention(channels, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self.attention(x)
        return x
