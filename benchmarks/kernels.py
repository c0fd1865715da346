"""archdsl's attention kernels against timm's, forward and forward+backward, in one process.

- halo: ``archdsl.nn.halo.HaloAttention`` vs ``timm.layers.HaloAttn``, 256 channels, 32x32, block 8, halo 3,
  8 heads;
- outlook: ``archdsl.nn.outlook.OutlookAttention`` vs ``timm.models.volo.OutlookAttention``, 28x28x192,
  kernel 3, stride 2, 6 heads;
- global: ``archdsl.nn.global_attention.GlobalAttention`` vs ``timm.layers.BottleneckAttn``, 256 channels,
  16x16, 4 heads.

Batch 8, float32 (bf16 autocast on CUDA with ``--bf16``). The same weights are loaded into both
implementations (timm's with ``scale_pos_embed=True``, the paper's scaling; timm's halo has no padding mask,
so the outputs are compared on the interior blocks only) and the outputs are checked equal (in IEEE float32,
TF32 off) before timing. On CUDA archdsl's halo and global attention take their fused path (the memory-efficient
SDPA kernel; ``python -m benchmarks.gpu`` checks that it is taken).
Rows: ``{"op", "impl", "mode": "fwd"|"fwd+bwd", "ms", "peak_mb"}``, median over alternating rounds.
``--quick`` times archdsl alone on small inputs (CI runs it so the benchmark cannot rot).

Run: ``python -m benchmarks.kernels --json benchmarks/results/kernels.json`` (environment: benchmarks/README.md)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from archdsl.nn.global_attention import GlobalAttention
from archdsl.nn.halo import HaloAttention
from archdsl.nn.outlook import OutlookAttention
from benchmarks.common import (
    add_speedups,
    alternate,
    exact_fp32,
    machine,
    peak_mb,
    pick_device,
    pin_threads,
    report,
)


@dataclass(frozen=True)
class Case:
    op: str
    ours: nn.Module
    input_shape: tuple[int, ...]
    theirs: Callable[[nn.Module], nn.Module] | None  # timm's module with our weights loaded
    compare: Callable[[torch.Tensor], torch.Tensor]  # the part of the output both define alike


def halo_timm(ours: nn.Module) -> nn.Module:
    from timm.layers.halo_attn import HaloAttn

    assert isinstance(ours, HaloAttention)
    c = ours.q.in_channels
    theirs = HaloAttn(
        c,
        ours.heads * ours.v_dim,
        num_heads=ours.heads,
        block_size=ours.block,
        halo_size=ours.halo,
        scale_pos_embed=True,
    )
    n, dq, dv, h = ours.heads, ours.qk_dim, ours.v_dim, ours.halo
    k, v = ours.kv.weight.detach().split([n * dq, n * dv])
    kv = torch.cat([k.reshape(n, dq, c, 1, 1), v.reshape(n, dv, c, 1, 1)], 1)  # timm: per head [k; v]
    rows = 2 * ours.window - 1 - h  # timm reads table row (offset + window - 1 + halo)
    with torch.no_grad():
        theirs.q.weight.copy_(ours.q.weight)
        theirs.kv.weight.copy_(kv.reshape_as(theirs.kv.weight))
        theirs.pos_embed.height_rel[h:].copy_(ours.relpos.table_h[:rows])
        theirs.pos_embed.width_rel[h:].copy_(ours.relpos.table_w[:rows])
    return theirs


def outlook_timm(ours: nn.Module) -> nn.Module:
    from timm.models.volo import OutlookAttention as TimmOutlook

    assert isinstance(ours, OutlookAttention)
    theirs = TimmOutlook(
        ours.v.in_features,
        ours.num_heads,
        ours.kernel_size,
        ours.padding,
        ours.stride,
        qkv_bias=ours.v.bias is not None,
    )
    theirs.load_state_dict(ours.state_dict())
    return theirs


def global_timm(ours: nn.Module) -> nn.Module:
    from timm.layers.bottleneck_attn import BottleneckAttn

    assert isinstance(ours, GlobalAttention)
    c = ours.qkv.in_channels
    theirs = BottleneckAttn(c, c, feat_size=ours.size, num_heads=ours.heads, scale_pos_embed=True)
    with torch.no_grad():
        theirs.qkv.weight.copy_(ours.qkv.weight)
        theirs.pos_embed.height_rel.copy_(ours.relpos.table_h)
        theirs.pos_embed.width_rel.copy_(ours.relpos.table_w)
    return theirs


def cases(quick: bool) -> list[Case]:
    torch.manual_seed(0)
    if quick:
        return [
            Case("halo", HaloAttention(32, 32, 16, 16, 8, 3, 4, 1), (32, 16, 16), None, lambda y: y),
            Case("outlook", OutlookAttention(48, 3, 3, 1, 2, False), (14, 14, 48), None, lambda y: y),
            Case("global", GlobalAttention(32, 8, 8, 4, 1), (32, 8, 8), None, lambda y: y),
        ]
    return [
        Case(
            "halo", HaloAttention(256, 256, 32, 32, 8, 3, 8, 1), (256, 32, 32), halo_timm, lambda y: y[..., 8:24, 8:24]
        ),  # interior blocks: no padded keys, where timm's unmasked halo agrees
        Case("outlook", OutlookAttention(192, 6, 3, 1, 2, False), (28, 28, 192), outlook_timm, lambda y: y),
        Case("global", GlobalAttention(256, 16, 16, 4, 1), (256, 16, 16), global_timm, lambda y: y),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--quick", action="store_true", help="archdsl alone, small inputs, few rounds")
    parser.add_argument("--ops", nargs="*", default=["halo", "outlook", "global"], help="kernels to time")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    device = pick_device(args.device)
    bsz, rounds = (2, 3) if args.quick else (args.batch, args.rounds)
    autocast = torch.autocast(device.type, torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    rows: list[dict[str, object]] = []
    for case in (c for c in cases(args.quick) if c.op in args.ops):
        impls = {"archdsl": case.ours.to(device)}
        if case.theirs is not None:
            impls["timm"] = case.theirs(case.ours).to(device)
        x = torch.randn(bsz, *case.input_shape, device=device)
        with torch.no_grad(), exact_fp32():  # IEEE float32 on CUDA too: cuDNN's TF32 convolutions differ by 1e-3
            reference = case.compare(case.ours(x))
            for name, module in impls.items():
                torch.testing.assert_close(
                    case.compare(module(x)),
                    reference,
                    rtol=1e-4,
                    atol=1e-4,
                    msg=lambda m, name=name, op=case.op: f"{op}: {name} differs: {m}",
                )
        xg = x.clone().requires_grad_(True)

        def fwd(m: nn.Module, x: torch.Tensor = x) -> None:
            with torch.no_grad(), autocast:
                m(x)

        def fwd_bwd(m: nn.Module, xg: torch.Tensor = xg) -> None:
            with autocast:
                y = m(xg)
            y.float().square().mean().backward()

        for mode, run in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            steps = {name: (lambda m=m, run=run: run(m)) for name, m in impls.items()}
            ms = alternate(steps, rounds=rounds, warmup=1 if args.quick else args.warmup, device=device)
            for name, step in steps.items():
                rows.append(
                    {
                        "op": case.op,
                        "impl": name,
                        "mode": mode,
                        "ms": round(ms[name], 3),
                        "peak_mb": round(peak_mb(step, device), 2),
                    }
                )
    add_speedups(rows, ("op", "mode"))
    info = machine(device) | {"batch": bsz, "rounds": rounds, "bf16": args.bf16, "quick": args.quick}
    report(info, rows, ["op", "impl", "mode", "ms", "peak_mb", "speedup_vs_timm"], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
