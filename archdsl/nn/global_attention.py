"""Bottleneck Transformers for Visual Recognition (Srinivas et al. 2021, arXiv:2101.11605): the
multi-head self-attention (MHSA) layer that replaces the 3x3 conv in BoTNet's last stage.

Every pixel attends to every pixel of the map. Logits per head: ``(q·k + q·R_h[k_y - q_y] +
q·R_w[k_x - q_x]) / sqrt(d)`` with factorised 2-D relative-position tables of shape (2H-1, d) and (2W-1, d)
sized from the map at build time and shared by all heads; the scale multiplies the query once, so it applies
to the content and the position logits alike. q, k, v are 1x1 convs w -> w without bias (fused into one
conv, same parameters); there is no output projection (the bottleneck's last 1x1 conv is it). Stride 2 is a
2x2 average pool after the attention, as in the paper's first stage-4 block.
Deviations from the paper: none intended.

Two formulations, chosen per device by ``fused_path`` (relative-position module). On CUDA q, k and v are
one contiguous (3, B, n, HW, d) copy of the conv output, from NCHW and channels-last maps alike, handed with
the bias (B, n, HW, HW) in the query's dtype to ``F.scaled_dot_product_attention``, which runs the
memory-efficient kernel (``attend_fused``); the output keeps the input's memory format. On the CPU it is one
``baddbmm`` + softmax + ``bmm``.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.nn.relpos import RelativePosition2d, attend_fused, fused_path, head_aligned

__all__ = ["GlobalAttention"]


class GlobalAttention(nn.Module):
    """BoTNet MHSA on a fixed (height, width) map: (B, w, H, W) -> (B, w, H/s, W/s)."""

    def __init__(self, channels: int, height: int, width: int, num_heads: int, stride: int) -> None:
        super().__init__()
        self.heads, self.stride = num_heads, stride
        self.head_dim = channels // num_heads
        self.size = (height, width)
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        rows, cols = range(height), range(width)
        self.relpos = RelativePosition2d(self.head_dim, (height, width), rows, cols, rows, cols)
        self.pool = nn.AvgPool2d(2) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused_path(x):
            return self.pool(self._attend_fused(x))  # (B, w, H/s, W/s)
        bsz = x.shape[0]
        n, d = self.heads, self.head_dim
        hh, ww = self.size
        qkv = self.qkv(x).reshape(bsz, 3, n, d, hh * ww).transpose(-1, -2)  # (B, 3, n, HW, d)
        q, k, v = qkv.unbind(1)  # each (B, n, HW, d)
        q = q * self.scale  # scaled once: the content and the position logits alike
        bias = self.relpos(q.reshape(bsz, n, hh, ww, d))  # (B, n, HW, HW)
        # CPU: SDPA takes its unfused math path for a bias that needs a gradient; one baddbmm (bias + q k^T, no
        # scale factors whose backward would allocate scaled gradient copies) and one bmm do the same with fewer
        # passes over the logits
        m, t = bsz * n, hh * ww
        logits = torch.baddbmm(bias.reshape(m, t, t), q.reshape(m, t, d), k.reshape(m, t, d).transpose(1, 2))
        del bias  # neither (HW x HW) temporary is saved for backward: free each once its consumer is done
        attn = logits.softmax(dim=-1)
        del logits
        out = torch.bmm(attn, v.reshape(m, t, d)).reshape(bsz, n, t, d)
        out = out.transpose(-1, -2).reshape(bsz, n * d, hh, ww)  # (B, w, H, W)
        return self.pool(out)  # (B, w, H/s, W/s)

    def _attend_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The CUDA path, before the pool: 4-D contiguous SDPA operands; the output (B, w, H, W) in the memory
        format of ``x``."""
        bsz = x.shape[0]
        n, d = self.heads, self.head_dim
        hh, ww = self.size
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        qkv = self.qkv(x).reshape(bsz, 3, n, d, hh * ww).permute(1, 0, 2, 4, 3)  # (3, B, n, HW, d), a view
        q, k, v = head_aligned(qkv).unbind(0)  # one contiguous copy (d padded to a multiple of 8)
        q = q * self.scale  # scaled once: the content and the position logits alike
        bias = self.relpos(q[..., :d].reshape(bsz, n, hh, ww, d))  # (B, n, HW, HW)
        out = attend_fused(q, k, v, bias)[..., :d]  # (B, n, HW, d)
        if channels_last:  # (B, HW, n, d) -> (B, H, W, w), viewed as NCHW
            return out.transpose(1, 2).reshape(bsz, hh, ww, n * d).permute(0, 3, 1, 2)
        return out.transpose(-1, -2).reshape(bsz, n * d, hh, ww)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, size={self.size}, stride={self.stride}"
