"""``HaloAttention(compat="timm")`` computes ``timm.layers.HaloAttn``: the same weights in both, float64, outputs and
input gradients compared (needs timm: the bench environment of benchmarks/README.md).

timm's module is built with its defaults (``scale_pos_embed=False``, as timm's HaloNets are) and ``dim_head`` set to
archdsl's query/key head width; the weights are copied as ``benchmarks.kernels.halo_timm`` does, except that the
relative-position tables go in verbatim (in the timm mode the tables are indexed as timm's are). Each case runs
archdsl's eager CPU path and its fused path (the CUDA formulation forced onto the CPU tensors, what it hands
``F.scaled_dot_product_attention``). For contrast, ``archdsl_mode_rel_err`` is the default mode against timm's
module with ``scale_pos_embed=True`` (the paper's scale, tables mapped as in ``benchmarks.kernels``): it agrees
where no window reaches the padding at stride 1 (halo 0), and differs otherwise.
Rows: ``{"case", "stride", "block", "halo", "heads", "path", "rel_err", "grad_rel_err", "archdsl_mode_rel_err"}``,
errors as max |archdsl - timm| / max |timm|.

Run: ``.venv-bench/bin/python -m benchmarks.halo_timm_mode --json benchmarks/results/halo_timm_mode.json``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # archdsl from this checkout (bench venv)

from archdsl.atomic import atomic_write_text
from archdsl.nn import relpos
from archdsl.nn.halo import HaloAttention
from benchmarks.common import machine, pin_threads, table

TOLERANCE = 1e-10

Case = tuple[int, int, int, int, int, int, int, int]
CASES: list[Case] = [
    # channels, value_channels, height, width, block, halo, heads, stride
    (16, 16, 8, 8, 4, 1, 4, 1),
    (16, 32, 16, 16, 8, 3, 2, 1),  # HaloNet's block 8, halo 3
    (8, 16, 12, 8, 4, 2, 2, 1),
    (8, 8, 6, 6, 2, 3, 2, 1),  # halo wider than the block
    (8, 8, 8, 8, 4, 0, 2, 1),  # no halo
    (16, 16, 8, 8, 4, 1, 4, 2),
    (16, 32, 16, 16, 8, 3, 2, 2),
    (8, 16, 12, 8, 4, 2, 2, 2),
    (12, 24, 12, 12, 6, 2, 3, 2),
    (8, 8, 8, 8, 4, 0, 2, 2),
]


def timm_halo(ours: HaloAttention) -> Any:
    """timm's ``HaloAttn`` (its defaults) holding ``ours``'s weights; the tables as they are in ``ours``."""
    from timm.layers.halo_attn import HaloAttn

    c, n, dq, dv = ours.q.in_channels, ours.heads, ours.qk_dim, ours.v_dim
    theirs = HaloAttn(
        c, n * dv, stride=ours.stride, num_heads=n, dim_head=dq, block_size=ours.block, halo_size=ours.halo
    )
    k, v = ours.kv.weight.detach().split([n * dq, n * dv])
    kv = torch.cat([k.reshape(n, dq, c, 1, 1), v.reshape(n, dv, c, 1, 1)], 1)  # timm: per head [k; v]
    with torch.no_grad():
        theirs.q.weight.copy_(ours.q.weight)
        theirs.kv.weight.copy_(kv.reshape_as(theirs.kv.weight))
        theirs.pos_embed.height_rel.copy_(ours.relpos.table_h)
        theirs.pos_embed.width_rel.copy_(ours.relpos.table_w)
    return theirs.to(ours.q.weight.dtype)


def default_mode_from(timm_mode: HaloAttention, cfg: Case) -> HaloAttention:
    """archdsl's default mode with the weights of ``timm_mode``, tables mapped as ``benchmarks.kernels`` maps them
    (timm reads row offset + window - 1 + halo at stride 1)."""
    ours = HaloAttention(*cfg).double()
    h, rows = ours.halo, 2 * ours.window - 1 - ours.halo
    with torch.no_grad():
        ours.q.weight.copy_(timm_mode.q.weight)
        ours.kv.weight.copy_(timm_mode.kv.weight)
        ours.relpos.table_h.zero_()[:rows].copy_(timm_mode.relpos.table_h[h:])
        ours.relpos.table_w.zero_()[:rows].copy_(timm_mode.relpos.table_w[h:])
    return ours


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def run_case(cfg: Case, fused: bool, batch: int) -> dict[str, object]:
    c, cv, hh, ww, b, h, n, s = cfg
    torch.manual_seed(sum(cfg))
    ours = HaloAttention(*cfg, compat="timm").double()
    theirs = timm_halo(ours)
    x = torch.randn(batch, c, hh, ww, dtype=torch.float64, requires_grad=True)
    g = torch.randn(batch, cv, hh // s, ww // s, dtype=torch.float64)
    saved = relpos.FUSED_DEVICES
    relpos.FUSED_DEVICES = frozenset({"cpu", "cuda"}) if fused else frozenset()
    try:
        got = ours(x)
        (got_grad,) = torch.autograd.grad(got, x, g)
        default = default_mode_from(ours, cfg)(x)
    finally:
        relpos.FUSED_DEVICES = saved
    want = theirs(x)
    (want_grad,) = torch.autograd.grad(want, x, g)
    theirs.scale_pos_embed = True
    scaled = theirs(x)
    assert got.shape == want.shape == (batch, cv, hh // s, ww // s)
    return {
        "case": f"{c}->{cv} {hh}x{ww}",
        "stride": s,
        "block": b,
        "halo": h,
        "heads": n,
        "path": "fused" if fused else "eager",
        "rel_err": rel_err(got, want),
        "grad_rel_err": rel_err(got_grad, want_grad),
        "archdsl_mode_rel_err": rel_err(default, scaled),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    try:
        import timm  # noqa: F401
    except ImportError:
        print("timm is not installed: run this in the bench environment (benchmarks/README.md)", file=sys.stderr)
        return 2
    pin_threads(args.threads)
    rows = [run_case(cfg, fused, args.batch) for cfg in CASES for fused in (False, True)]
    worst = max(max(float(r["rel_err"]), float(r["grad_rel_err"])) for r in rows)  # type: ignore[arg-type]
    info = machine(torch.device("cpu")) | {"dtype": "float64", "batch": args.batch, "worst_rel_err": worst}
    columns = ["case", "stride", "block", "halo", "heads", "path", "rel_err", "grad_rel_err", "archdsl_mode_rel_err"]
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    print(table([{k: f"{v:.1e}" if isinstance(v, float) else v for k, v in r.items()} for r in rows], columns))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.json), json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    if worst > TOLERANCE:
        print(f"FAIL: worst relative error {worst:.1e} > {TOLERANCE:.0e}", file=sys.stderr)
        return 1
    print(f"ok: worst relative error {worst:.1e} <= {TOLERANCE:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
