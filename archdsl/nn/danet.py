"""Dual attention block (Fu et al. 2019, "Dual Attention Network for Scene Segmentation", arXiv:1809.02983).

Two attention modules over a (B, C, H, W) map, each scaled by a learnable scalar gamma that starts at zero:

- position attention module (PAM, paper eq. 1-2): ``P_i = sum_j softmax_j(q_i . k_j) v_j`` over the N = H*W
  positions; q and k are 1x1 convs to ``inner`` channels (the paper: C / 8), v a 1x1 conv to C, all with bias.
  The paper's eq. 1 names the convs the other way round (``s_ji = exp(B_i . C_j)``, normalised over i, for output
  j); the authors' code, followed here, puts the query at the output position, the same family of functions.
- channel attention module (CAM, paper eq. 3-4): ``A_c = sum_d softmax_d(l_cd) x_d`` over the C channels, each
  channel ``x_c`` the N values of the input itself (no projection), with the energy ``e_cd = x_c . x_d`` (E = X X^T).
  ``channel_logits`` chooses the logits ``l``:

  - ``max_minus_energy`` (the default): ``l_cd = max_d' e_cd' - e_cd``, the authors' released code (``CAM_Module``,
    ``energy_new = max(energy) - energy``), with which the paper's results were obtained. A per-row constant does
    not change a softmax, so this is ``softmax_d(-e_cd)``: a channel gathers most from the channels least similar
    to it. It is not a guard against overflow (that would be ``e - max``), which is why it is an option here.
  - ``energy``: ``l_cd = e_cd``, eq. 3 as printed (a channel gathers most from the channels most similar to it).

``branches`` keeps both modules (the paper's DANet) or one of them (the paper's ablation, table 1). The block returns
``x + gamma_p P + gamma_c A`` (a missing module contributes nothing), so it starts as the identity.

Deviations from the paper:

- The modules act on the block's input at its own C channels. The paper's segmentation head (authors' code
  ``DANetHead``) wraps each module in a 3x3 conv + BN + ReLU reduction (2048 -> 512 channels) before it and a
  3x3 conv + BN + ReLU after it, then dropout and a 1x1 classifier; those are left out: inside a backbone the conv
  blocks before and after the context block do that work, and without them the block is a residual context block
  that keeps the map (like the non-local block).
- One residual for both modules: the paper's modules each add their input (``PAM(x) = x + gamma_p P``,
  ``CAM(x) = x + gamma_c A``) and the head sums their outputs; on one shared input that sum is
  ``2x + gamma_p P + gamma_c A``, which would double the residual stream at every block, so the input is added once.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.qkv import QueryKeyValue

__all__ = ["DANET_BRANCHES", "DANET_CHANNEL_LOGITS", "ChannelAttention", "DualAttention", "PositionAttention"]

DANET_BRANCHES = ("both", "position", "channel")
DANET_CHANNEL_LOGITS = ("max_minus_energy", "energy")


class PositionAttention(QueryKeyValue):
    """``gamma * sum_j softmax_j(q_i . k_j) v_j`` at every position i (no residual): (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.project(x)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)  # (B, C', N), (B, C', N), (B, C, N)
        attn = (q.transpose(1, 2) @ k).softmax(dim=-1)  # (B, N, N): row i over the keys j
        y = (v @ attn.transpose(1, 2)).reshape(b, c, h, w)  # (B, C, N) -> (B, C, H, W)
        return self.gamma * y


class ChannelAttention(nn.Module):
    """``gamma * sum_d softmax_d(l_cd) x_d`` for every channel c (no residual): (B, C, H, W) -> (B, C, H, W)."""

    NO_WEIGHT_DECAY = ("gamma",)
    """The output scale is a gate, like a norm's weight: no weight decay."""

    def __init__(self, logits: str) -> None:
        super().__init__()
        if logits not in DANET_CHANNEL_LOGITS:
            raise ValueError(f"channel logits must be one of {DANET_CHANNEL_LOGITS}, got {logits!r}")
        self.max_minus_energy = logits == "max_minus_energy"
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        f = x.flatten(2)  # (B, C, N)
        energy = f @ f.transpose(1, 2)  # (B, C, C): e_cd = x_c . x_d
        if self.max_minus_energy:
            energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = energy.softmax(dim=-1)  # (B, C, C): row c over the channels d
        y = (attn @ f).reshape(b, c, h, w)  # (B, C, N) -> (B, C, H, W)
        return self.gamma * y


class DualAttention(nn.Module):
    """``x + PAM(x) + CAM(x)``, without the module ``branches`` leaves out: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, inner: int, branches: str, channel_logits: str) -> None:
        super().__init__()
        if branches not in DANET_BRANCHES:
            raise ValueError(f"branches must be one of {DANET_BRANCHES}, got {branches!r}")
        if channel_logits not in DANET_CHANNEL_LOGITS:
            raise ValueError(f"channel_logits must be one of {DANET_CHANNEL_LOGITS}, got {channel_logits!r}")
        self.position = PositionAttention(channels, inner) if branches in ("both", "position") else None
        self.channel = ChannelAttention(channel_logits) if branches in ("both", "channel") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.position is not None:
            out = out + self.position(x)
        if self.channel is not None:
            out = out + self.channel(x)
        return out
