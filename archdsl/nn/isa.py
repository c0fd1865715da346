"""Interlaced sparse self-attention block (Huang et al. 2019, "Interlaced Sparse Self-Attention for Semantic
Segmentation", arXiv:1907.12273).

The map, zero-padded (both sides, as the authors' code) to a multiple of the block size P_h x P_w, is seen as
Q_h x Q_w blocks of P_h x P_w positions. Two self-attention modules follow each other:

- long-range: attention among the Q_h * Q_w positions that have the same offset inside their block (the
  interlaced permutation), P_h * P_w groups;
- short-range: on the long-range output, attention among the P_h * P_w positions of each block.

Each module is ``ReLU(BN(W_o sum_j softmax_j(q_i . k_j / sqrt(d)) v_j))`` with the query and key transforms a
1x1 conv (no bias) + BN + ReLU to ``d = key`` channels, the value a 1x1 conv (no bias) to C, and ``W_o`` a 1x1
conv (no bias) + BN + ReLU to C (the authors' code). The padding is cropped off and the result concatenated with
the input and fused by a 1x1 conv (no bias) + BN + ReLU to C, the paper's fusion: the block keeps the map and is
not residual in the additive sense. The 1x1 convs and BNs act per position, so they are applied on the whole
padded map before the positions are grouped (the same values, and the same BN statistics, as applying them
on the permuted groups). Padded positions take part in the attention, unmasked, as in the authors' code.
Deviation from the paper: the dropout after the fusion is left out; one block size (the authors' code can run
several and concatenate them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InterlacedSparseAttention", "SelfAttention2d"]


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SelfAttention2d(nn.Module):
    """Self-attention inside groups of positions of a (B, C, Q_h P_h, Q_w P_w) map: ``long`` groups the positions
    with the same offset inside their P_h x P_w block, otherwise the positions of each block."""

    def __init__(self, channels: int, key: int, value: int, out: int) -> None:
        super().__init__()
        self.query = _conv_bn_relu(channels, key)
        self.key = _conv_bn_relu(channels, key)
        self.value = nn.Conv2d(channels, value, 1, bias=False)
        self.out = _conv_bn_relu(value, out)

    def forward(self, x: torch.Tensor, block: tuple[int, int], long: bool) -> torch.Tensor:
        b, _, h, w = x.shape
        ph, pw = block
        qh, qw = h // ph, w // pw
        # (B, d, Q_h, P_h, Q_w, P_w) -> (B, groups, members, d)
        order = (0, 3, 5, 2, 4, 1) if long else (0, 2, 4, 3, 5, 1)

        def group(t: torch.Tensor) -> torch.Tensor:
            d = t.shape[1]
            t = t.reshape(b, d, qh, ph, qw, pw).permute(*order)
            return t.reshape(b, ph * pw if long else qh * qw, -1, d)

        q, k, v = group(self.query(x)), group(self.key(x)), group(self.value(x))
        attn = (q @ k.transpose(2, 3) * q.shape[-1] ** -0.5).softmax(dim=-1)
        y = attn @ v  # (B, groups, members, dv)
        dv = y.shape[-1]
        if long:  # (B, P_h, P_w, Q_h, Q_w, dv)
            y = y.reshape(b, ph, pw, qh, qw, dv).permute(0, 5, 3, 1, 4, 2)
        else:  # (B, Q_h, Q_w, P_h, P_w, dv)
            y = y.reshape(b, qh, qw, ph, pw, dv).permute(0, 5, 1, 3, 2, 4)
        return self.out(y.reshape(b, dv, h, w))


class InterlacedSparseAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, key: int, block: tuple[int, int] | list[int]) -> None:
        super().__init__()
        self.block = (int(block[0]), int(block[1]))
        self.long_range = SelfAttention2d(channels, key, channels, channels)
        self.short_range = SelfAttention2d(channels, key, channels, channels)
        self.fuse = _conv_bn_relu(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        ph, pw = self.block
        pad_h, pad_w = -h % ph, -w % pw
        top, left = pad_h // 2, pad_w // 2
        y = F.pad(x, (left, pad_w - left, top, pad_h - top)) if pad_h or pad_w else x
        y = self.short_range(self.long_range(y, self.block, long=True), self.block, long=False)
        y = y[:, :, top : top + h, left : left + w]
        return self.fuse(torch.cat([x, y], dim=1))
