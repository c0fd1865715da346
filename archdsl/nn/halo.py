"""Scaling Local Self-Attention for Parameter Efficient Visual Backbones (Vaswani et al. 2021,
arXiv:2103.12731): blocked local self-attention with halos, the spatial mixer of HaloNet.

The map is cut into non-overlapping b x b query blocks; every block attends to the (b+2h) x (b+2h) window
around it, taken from the keys/values zero-padded by h. Padded key positions get zero attention weight
(additive ``-inf``). Logits per head: ``(q·k + q·R_h[k_y - q_y] + q·R_w[k_x - q_x]) / sqrt(d)`` with the
factorised relative-position tables of shape (2(b+2h)-1, d) shared by all heads; the scale multiplies the
query once, so it applies to the content and the position logits alike. Queries and keys have width w,
values (and the output) width r_v*w; q/k/v are 1x1 convs without bias and there is no output projection
(the bottleneck's last 1x1 conv is it). Stride 2 subsamples the queries (the top-left pixel of every 2x2
cell of each block, (b/2)^2 queries per block, by a strided 1x1 query conv) while keys/values still come
from the full window; relative offsets are measured in full-resolution pixels.
Deviations from the paper: none intended; k and v are one fused 1x1 conv (same parameters).

``compat="timm"`` computes ``timm.layers.HaloAttn`` (with its defaults, which timm's HaloNets use) instead, the
three choices of :data:`CONVENTIONS` switched together: keys in the zero padding are attended like any other key
(a zero key and value, logit = its position term); the softmax scale multiplies the content logits only
(timm's ``scale_pos_embed=False``); and the relative offset of a key is counted from the query's index in its
(subsampled) query block, ``k - i`` with window coordinate k in [0, b+2h) and i in [0, b/s), which is how timm's
table is indexed. Within the window that is the pixel offset plus ``h + (s-1)*i``: a shift of every offset by h
at stride 1 (so the tables hold timm's rows verbatim), and at stride 2 an offset that depends on the query's
position in its block. The parameters are the same (timm's kv conv orders its output channels per head, [k_h;
v_h], where this one has all keys, then all values: ``benchmarks/halo_timm_mode.py`` maps the weights).

Two formulations, chosen per device by ``fused_path`` (relative-position module). On CUDA every (image,
head, block) problem is one (batch, heads, tokens, dim) slice of ``F.scaled_dot_product_attention``: queries
(B, n*gh*gw, (b/s)^2, dq) and the windows' keys/values (B, n*gh*gw, (b+2h)^2, d), each one contiguous copy
straight from the conv output (whose memory format the output keeps), and the position-and-padding bias
(B, n*gh*gw, (b/s)^2, (b+2h)^2) in the query's dtype, so the memory-efficient kernel runs it, bias gradient
included (``attend_fused``). On the CPU it is ``baddbmm`` + softmax + ``bmm`` over block windows copied once
per window, in chunks of images.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn.relpos import RelativePosition2d, attend_fused, fused_path, head_aligned
from archdsl.nn.windows import block_windows

__all__ = ["CONVENTIONS", "HaloAttention", "HaloConvention"]

CHUNK_LOGITS = 2**21  # logits per eager CPU chunk (8 MiB in float32)


class HaloConvention(NamedTuple):
    """The three choices in which halo attention implementations differ (same parameters, different function).
    A named tuple, not a dataclass: the exported standalone source inlines this module (a dataclass looks its
    module up in ``sys.modules``, which a file loaded by path need not be in)."""

    mask_padding: bool
    """Keys in the zero padding get no weight (additive ``-inf``), or are attended like any key (timm)."""
    pixel_offsets: bool
    """Relative offsets between full-resolution pixels (``k - (h + s*i)`` in the window), or between window and
    query-block indices (``k - i``, timm's indexing)."""
    scale_position: bool
    """The softmax scale 1/sqrt(d) multiplies the position logits as well as the content logits (the paper), or
    the content logits only (timm's default)."""


CONVENTIONS: dict[str, HaloConvention] = {
    "paper": HaloConvention(mask_padding=True, pixel_offsets=True, scale_position=True),
    "timm": HaloConvention(mask_padding=False, pixel_offsets=False, scale_position=False),
}
"""``compat`` name -> convention (the halo mixer spec's ``compat`` names the same keys)."""


class HaloAttention(nn.Module):
    """Halo attention on a fixed (height, width) map: (B, w, H, W) -> (B, r_v*w, H/s, W/s)."""

    mask_h: torch.Tensor
    mask_w: torch.Tensor

    def __init__(
        self,
        channels: int,
        value_channels: int,
        height: int,
        width: int,
        block_size: int,
        halo_size: int,
        num_heads: int,
        stride: int,
        compat: str = "paper",
    ) -> None:
        super().__init__()
        if compat not in CONVENTIONS:
            raise ValueError(f"compat={compat!r} is not one of {sorted(CONVENTIONS)}")
        convention = CONVENTIONS[compat]
        b, h, s = block_size, halo_size, stride
        self.block, self.halo, self.stride, self.heads = b, h, s, num_heads
        self.compat, self.mask_padding = compat, convention.mask_padding
        self.window = b + 2 * h
        self.qk_dim = channels // num_heads
        self.v_dim = value_channels // num_heads
        self.grid = (height // b, width // b)
        self.scale = self.qk_dim**-0.5
        # q carries the scale; unscaled position logits read the tables times its inverse
        self.table_scale = 1.0 if convention.scale_position else self.qk_dim**0.5
        self.q = nn.Conv2d(channels, channels, 1, s, bias=False)
        self.kv = nn.Conv2d(channels, channels + value_channels, 1, bias=False)
        window_pos = range(self.window)
        # query rows/cols inside the window: full-resolution pixels, or (timm) indices in the query block
        query_pos = range(h, h + b, s) if convention.pixel_offsets else range(b // s)
        self.relpos = RelativePosition2d(
            self.qk_dim, (self.window, self.window), query_pos, query_pos, window_pos, window_pos
        )
        # 0 for keys inside the map, -inf for the zero padding, per block row (gh, window) and block column
        # (gw, window): the padding mask of a window is separable, so it is folded into the two
        # relative-position factors before their broadcast sum instead of being added to every logit
        gh, gw = self.grid
        rows = torch.arange(gh).unsqueeze(1) * b - h + torch.arange(self.window)  # (gh, window)
        cols = torch.arange(gw).unsqueeze(1) * b - h + torch.arange(self.window)  # (gw, window)
        # eager CPU runs the attention in chunks of images that keep every logit tensor under CHUNK_LOGITS
        # elements, small enough for the allocator to reuse its memory (a fresh multi-MB tensor costs a page
        # fault per 4 KiB) and warm in cache; small maps (digits) are one chunk, without a loop per image
        per_image = num_heads * gh * gw * (b // s) ** 2 * self.window**2
        self.chunk = max(1, CHUNK_LOGITS // per_image)
        outside = float("-inf") if self.mask_padding else 0.0  # unmasked: zeros, whose addition is skipped
        self.register_buffer(
            "mask_h", torch.zeros(gh, self.window).masked_fill((rows < 0) | (rows >= height), outside), persistent=False
        )
        self.register_buffer(
            "mask_w", torch.zeros(gw, self.window).masked_fill((cols < 0) | (cols >= width), outside), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x) * self.scale  # (B, n*dq, H/s, W/s); scaling q scales the content and position logits alike
        kv = self.kv(x)  # (B, n*(dq+dv), H, W)
        if fused_path(x):
            return self._attend_fused(q, kv, channels_last=_is_channels_last(x))
        chunk = self.chunk
        if torch.compiler.is_compiling() or x.shape[0] <= chunk:
            return self._attend(q, kv)
        return torch.cat([self._attend(qi, kvi) for qi, kvi in zip(q.split(chunk), kv.split(chunk), strict=True)])

    def _key_windows(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every block's (b+2h)² window of keys and of values, zero outside the map:
        (B, n, gh, gw, dq, win, win) and (B, n, gh, gw, dv, win, win)."""
        n, dq, b, h, win = self.heads, self.qk_dim, self.block, self.halo, self.window
        if kv.is_cuda or torch.compiler.is_compiling():  # views of the padded map: what inductor fuses into the
            # consumers (the per-window copies below would be a kernel launch each)
            k, v = self._window_views(kv)
            order = (0, 1, 3, 4, 2, 5, 6)  # (B, n, d, gh, gw, win, win) -> (B, n, gh, gw, d, win, win)
            return k.permute(order), v.permute(order)
        # eager CPU: one clipped copy per window, whose backward adds them back (no padded copy, no unfold scatter)
        return block_windows(kv[:, : n * dq], win, h, b, n), block_windows(kv[:, n * dq :], win, h, b, n)

    def _window_views(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of the zero-padded map, every block's window of keys and of values:
        (B, n, dq, gh, gw, win, win) and (B, n, dv, gh, gw, win, win)."""
        n, dq, dv, b, h, win = self.heads, self.qk_dim, self.v_dim, self.block, self.halo, self.window
        windows = F.pad(kv, (h,) * 4).unfold(2, win, b).unfold(3, win, b)  # (B, C, gh, gw, win, win)
        k, v = windows.split([n * dq, n * dv], dim=1)
        return k.unflatten(1, (n, dq)), v.unflatten(1, (n, dv))

    def _attend_fused(self, q: torch.Tensor, kv: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """The CUDA path: scaled queries (B, n*dq, H/s, W/s) and keys/values (B, n*(dq+dv), H, W) as 4-D
        contiguous SDPA operands, one (batch, heads) slice per (image, head x block); the output in the
        memory format of the input (``channels_last``)."""
        bsz = q.shape[0]
        n, dq, dv = self.heads, self.qk_dim, self.v_dim
        gh, gw = self.grid
        bq = self.block // self.stride  # query block side
        nq, nk = bq * bq, self.window**2
        heads = n * gh * gw  # every block of every head is a head of the kernel's (batch, heads) grid
        q = q.reshape(bsz, n, dq, gh, bq, gw, bq).permute(0, 1, 3, 5, 4, 6, 2)  # (B, n, gh, gw, bq, bq, dq)
        q = head_aligned(q)  # one contiguous copy (d padded to a multiple of 8); the bias reads its first dq
        logits_h, logits_w = self.relpos.factors(q[..., :dq], self.table_scale)  # (B, n, gh, gw, bq, bq, win) each
        if self.mask_padding:
            logits_h = logits_h + self.mask_h.to(logits_h.dtype)[:, None, None, None, :]  # padded key rows -> -inf
            logits_w = logits_w + self.mask_w.to(logits_w.dtype)[None, :, None, None, :]  # padded key cols -> -inf
        bias = (logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)).reshape(bsz, heads, nq, nk)
        k, v = self._window_views(kv)  # (B, n, d, gh, gw, win, win)
        order = (0, 1, 3, 4, 5, 6, 2)  # -> (B, n, gh, gw, win, win, d): d last, one copy each
        k = head_aligned(k.permute(order)).reshape(bsz, heads, nk, -1)
        v = head_aligned(v.permute(order)).reshape(bsz, heads, nk, -1)
        out = attend_fused(q.reshape(bsz, heads, nq, -1), k, v, bias)[..., :dv]  # (B, n*gh*gw, bq^2, dv)
        out = out.reshape(bsz, n, gh, gw, bq, bq, dv)
        hq, wq = gh * bq, gw * bq
        if channels_last:  # (B, gh, bq, gw, bq, n, dv) -> (B, H/s, W/s, r_v*w), viewed as NCHW
            return out.permute(0, 2, 4, 3, 5, 1, 6).reshape(bsz, hq, wq, n * dv).permute(0, 3, 1, 2)
        return out.permute(0, 1, 6, 2, 4, 3, 5).reshape(bsz, n * dv, hq, wq)  # (B, r_v*w, H/s, W/s)

    def _attend(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """The CPU path (and what ``torch.compile`` traces off CUDA): scaled queries (B, n*dq, H/s, W/s) and the
        keys/values (B, n*(dq+dv), H, W)."""
        bsz = q.shape[0]
        n, dq, dv = self.heads, self.qk_dim, self.v_dim
        gh, gw = self.grid
        bq = self.block // self.stride  # query block side
        nq, nk = bq * bq, self.window**2
        m = bsz * n * gh * gw  # one attention problem per (image, head, block)
        q = q.reshape(bsz, n, dq, gh, bq, gw, bq).permute(0, 1, 3, 5, 4, 6, 2)  # (B, n, gh, gw, bq, bq, dq)
        logits_h, logits_w = self.relpos.factors(q, self.table_scale)  # (B, n, gh, gw, bq, bq, win) each
        if self.mask_padding:
            logits_h = logits_h + self.mask_h[:, None, None, None, :]  # padded key rows -> -inf
            logits_w = logits_w + self.mask_w[None, :, None, None, :]  # padded key columns -> -inf
        bias = (logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)).reshape(m, nq, nk)  # (M, bq^2, win^2)
        k, v = self._key_windows(kv)
        k_t, v_t = k.reshape(m, dq, nk), v.reshape(m, dv, nk)
        q = q.reshape(m, nq, dq)
        logits = torch.baddbmm(bias, q, k_t)
        del bias  # neither temporary is saved for backward: free each once its consumer is done
        attn = logits.softmax(dim=-1)
        del logits
        out = torch.bmm(attn, v_t.transpose(1, 2))  # (M, bq^2, dv)
        out = out.reshape(bsz, n, gh, gw, bq, bq, dv).permute(0, 1, 6, 2, 4, 3, 5)  # (B, n, dv, gh, bq, gw, bq)
        return out.reshape(bsz, n * dv, gh * bq, gw * bq)  # (B, r_v*w, H/s, W/s)

    def extra_repr(self) -> str:
        compat = "" if self.compat == "paper" else f", compat={self.compat}"
        return f"block={self.block}, halo={self.halo}, heads={self.heads}, stride={self.stride}{compat}"


def _is_channels_last(x: torch.Tensor) -> bool:
    """A (B, C, H, W) map stored NHWC (and not also NCHW, as a 1x1 map or a single channel is)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
