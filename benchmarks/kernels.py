"""Attention kernels against straightforward alternatives, forward and forward+backward, on this machine.

- halo: blocked attention (one (b+2h)^2 window per block, SDPA with the relative-position bias) vs
  materialising a window per query pixel (``F.unfold`` of keys/values around every query);
- outlook: gather + ``index_add`` fold (what archdsl uses) vs ``F.unfold``/``F.fold``;
- global: ``scaled_dot_product_attention`` with the relative bias vs an explicit softmax(QK^T + bias)V.

Prints a table and writes JSON (median of repeats after warm-up). Run: python benchmarks/kernels.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from archdsl.nn.global_attention import GlobalAttention
from archdsl.nn.halo import HaloAttention
from archdsl.nn.outlook import OutlookAttention

ROOT = Path(__file__).resolve().parent.parent


def timeit(fn: Callable[[], torch.Tensor], backward: bool, repeats: int) -> float:
    def step() -> None:
        y = fn()
        if backward:
            y.square().mean().backward()

    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def halo_per_query(m: HaloAttention, x: torch.Tensor) -> torch.Tensor:
    """Reference layout: for every query pixel, unfold a (b+2h)^2 window centred on its block (stride 1)."""
    bsz, _, hh, ww = x.shape
    n, dq, dv, b, h = m.heads, m.qk_dim, m.v_dim, m.block, m.halo
    win = m.window
    q = m.q(x) * m.scale  # (B, n*dq, H, W)
    kv = F.pad(m.kv(x), (h,) * 4)
    # windows of every block, repeated for each of its b*b queries: (B, C, H*W, win*win)
    blocks = kv.unfold(2, win, b).unfold(3, win, b)  # (B, C, gh, gw, win, win)
    per_query = blocks.repeat_interleave(b, 2).repeat_interleave(b, 3).reshape(bsz, -1, hh * ww, win * win)
    k, v = per_query.split([n * dq, n * dv], 1)
    k = k.reshape(bsz, n, dq, hh * ww, win * win)
    v = v.reshape(bsz, n, dv, hh * ww, win * win)
    qf = q.reshape(bsz, n, dq, hh * ww)
    gh, gw = m.grid
    bias = (
        m.relpos(
            (m.q(x) * m.scale)
            .reshape(bsz, n, dq, gh, b, gw, b)
            .permute(0, 1, 3, 5, 4, 6, 2)
            .reshape(bsz, n, gh * gw, b, b, dq)
        )
        + m.mask
    )  # (B, n, nb, b*b, win^2)
    bias = bias.reshape(bsz, n, gh, gw, b, b, -1).permute(0, 1, 2, 4, 3, 5, 6).reshape(bsz, n, hh * ww, -1)
    logits = torch.einsum("bndq,bndqk->bnqk", qf, k) + bias
    out = torch.einsum("bnqk,bndqk->bndq", logits.softmax(-1), v)
    return out.reshape(bsz, n * dv, hh, ww)


def outlook_unfold_fold(m: OutlookAttention, x: torch.Tensor) -> torch.Tensor:
    b, h, w, c = x.shape
    k, p, s = m.kernel_size, m.padding, m.stride
    k2 = k * k
    v = F.unfold(m.v(x).permute(0, 3, 1, 2), kernel_size=k, padding=p, stride=s)
    v = v.reshape(b, m.num_heads, m.head_dim, k2, -1).permute(0, 1, 4, 3, 2)
    a = m.attn(m.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    a = (a.reshape(b, -1, m.num_heads, k2, k2).permute(0, 2, 1, 3, 4) * m.scale).softmax(-1)
    y = (a @ v).permute(0, 1, 4, 3, 2).reshape(b, c * k2, -1)
    y = F.fold(y, output_size=(h, w), kernel_size=k, padding=p, stride=s)
    return m.proj(y.permute(0, 2, 3, 1))


def global_explicit(m: GlobalAttention, x: torch.Tensor) -> torch.Tensor:
    bsz = x.shape[0]
    n, d = m.heads, m.head_dim
    hh, ww = m.size
    q, k, v = m.qkv(x).reshape(bsz, 3, n, d, hh * ww).transpose(-1, -2).unbind(1)
    q = q * m.scale
    logits = q @ k.transpose(-1, -2) + m.relpos(q.reshape(bsz, n, hh, ww, d))
    out = logits.softmax(-1) @ v
    return m.pool(out.transpose(-1, -2).reshape(bsz, n * d, hh, ww))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "kernels.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    bsz = args.batch
    halo = HaloAttention(64, 64, 32, 32, block_size=8, halo_size=3, num_heads=4, stride=1)
    outlook = OutlookAttention(192, 6, 3, 1, 2, qkv_bias=False)
    glob = GlobalAttention(128, 14, 14, num_heads=4, stride=1)
    xh = torch.randn(bsz, 64, 32, 32, requires_grad=True)
    xo = torch.randn(bsz, 28, 28, 192, requires_grad=True)
    xg = torch.randn(bsz, 128, 14, 14, requires_grad=True)
    cases = [
        ("halo b8 h3 64ch 32x32", lambda: halo(xh), lambda: halo_per_query(halo, xh), "per-query windows"),
        ("outlook k3 s2 192ch 28x28", lambda: outlook(xo), lambda: outlook_unfold_fold(outlook, xo), "F.unfold/F.fold"),
        ("global 4 heads 128ch 14x14", lambda: glob(xg), lambda: global_explicit(glob, xg), "explicit softmax"),
    ]
    rows = []
    for name, ours, alt, alt_name in cases:
        with torch.no_grad():
            torch.testing.assert_close(ours(), alt(), rtol=1e-4, atol=1e-4)  # same function
        for backward in (False, True):
            t_ours = timeit(ours, backward, args.repeats)
            t_alt = timeit(alt, backward, args.repeats)
            rows.append(
                {
                    "kernel": name,
                    "pass": "fwd+bwd" if backward else "fwd",
                    "archdsl_ms": round(t_ours, 3),
                    "alternative": alt_name,
                    "alternative_ms": round(t_alt, 3),
                    "speedup": round(t_alt / t_ours, 3),
                }
            )
    print(f"batch {bsz}, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'kernel':<28} {'pass':<8} {'archdsl ms':>11} {'alternative':<18} {'alt ms':>9} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['kernel']:<28} {r['pass']:<8} {r['archdsl_ms']:>11.2f} {r['alternative']:<18} "
            f"{r['alternative_ms']:>9.2f} {r['speedup']:>7.2f}x"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"batch": bsz, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
