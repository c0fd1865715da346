"""Whole models, archdsl's compiled spec against timm's model of the same architecture, in one process.

One training step (forward, cross-entropy, backward, SGD step) and one eval forward at batch 4 and the
paper resolution, for:

| model | archdsl spec | timm |
|---|---|---|
| resnet50 | specs/resnet50.yaml | ``resnet50`` |
| botnet50 | specs/botnet50.yaml | ``ByobNet`` with the BoT50 layout (7x7 stem, BoTNet MHSA in stage 4) |
| halonet_h1 | specs/halonet_h1.yaml | ``halonet_h1`` |
| volo_d1 | specs/volo_d1.yaml | ``volo_d1_224`` |

Rows: ``{"model", "impl", "mode": "train"|"eval", "compiled", "batch", "ms", "img_per_s", "peak_mb",
"gflops_per_s", "mm_fraction"}``: achieved GFLOP/s counts the plan's forward FLOPs (3x for a training step)
and ``mm_fraction`` divides it by a matrix-multiply rate measured in the same run, in float32 (bf16 with
``--bf16``). The implementations alternate, one step each per round, after warm-up; medians. ``--compile`` adds
``torch.compile`` rows (default inductor backend). ``--quick`` times archdsl alone on small inputs. On the CPU
archdsl's model is in the layout its plan chose (``ModelPlan.channels_last``) and timm's in NCHW; on a GPU both
are in the layout :func:`archdsl.plan.layout.channels_last` picks for that device (NHWC for the zoo).

Run: ``python -m benchmarks.models --json benchmarks/results/models.json`` (environment: benchmarks/README.md)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import archdsl
from archdsl.plan.layout import channels_last
from benchmarks.common import (
    add_speedups,
    alternate,
    apply_layout,
    machine,
    matmul_gflops,
    peak_mb,
    pick_device,
    pin_threads,
    report,
)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "botnet50", "halonet_h1", "volo_d1")
QUICK = ("hybrid_tiny", "digits_hybrid")  # small zoo specs: archdsl alone, CI


def bot50_timm(img_size: int) -> nn.Module:
    """BoT50 as timm composes it: ResNet-50 with BoTNet MHSA (4 heads) in all three stage-4 blocks."""
    from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg

    cfg = ByoModelCfg(
        blocks=(
            ByoBlockCfg(type="bottle", d=3, c=256, s=1, gs=0, br=0.25),
            ByoBlockCfg(type="bottle", d=4, c=512, s=2, gs=0, br=0.25),
            ByoBlockCfg(type="bottle", d=6, c=1024, s=2, gs=0, br=0.25),
            ByoBlockCfg(type="self_attn", d=3, c=2048, s=2, gs=0, br=0.25),
        ),
        stem_chs=64,
        stem_type="7x7",
        stem_pool="maxpool",
        fixed_input_size=True,
        self_attn_layer="bottleneck",
        self_attn_kwargs={"scale_pos_embed": True},
    )
    return ByobNet(cfg, img_size=img_size)


def halonet_h0_timm(img_size: int) -> nn.Module:
    """HaloNet-H0 as timm would compose it (timm registers H1 only): ``halonet_h1``'s configuration with the
    paper's H0 widths (stage channels 32 to 256, bottleneck widths 64 to 512: bottle ratio 2) and 7 blocks in
    stage 3."""
    from dataclasses import replace

    from timm.models.byoanet import model_cfgs
    from timm.models.byobnet import ByobNet

    h1 = model_cfgs["halonet_h1"]
    blocks = tuple(replace(b, c=b.c // 2, br=2.0, d=7 if i == 2 else b.d) for i, b in enumerate(h1.blocks))
    return ByobNet(replace(h1, blocks=blocks), img_size=img_size)


def timm_model(name: str, img_size: int) -> nn.Module:
    import timm

    builders: dict[str, Callable[[], nn.Module]] = {
        "resnet50": lambda: timm.create_model("resnet50"),
        "botnet50": lambda: bot50_timm(img_size),
        "halonet_h1": lambda: timm.create_model("halonet_h1", img_size=img_size),
        "volo_d1": lambda: timm.create_model("volo_d1_224"),
    }
    return builders[name]()


def train_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: contextlib.AbstractContextManager
) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = model(x)
        F.cross_entropy(out.float(), y).backward()
        opt.step()

    return step


def eval_step(model: nn.Module, x: torch.Tensor, autocast: contextlib.AbstractContextManager) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad(), autocast:
            model(x)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help=f"subset of {', '.join(MODELS)}")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--modes", nargs="*", default=["train", "eval"])
    parser.add_argument("--quick", action="store_true", help="archdsl alone, small specs, few rounds")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    device = pick_device(args.device)
    names = args.models or (QUICK if args.quick else MODELS)
    rounds, warmup = (2, 1) if args.quick else (args.rounds, args.warmup)
    autocast = torch.autocast(device.type, torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    mm_rate = matmul_gflops(device, torch.bfloat16 if args.bf16 else torch.float32)
    rows: list[dict[str, object]] = []
    for name in names:
        spec = archdsl.load_spec(ROOT / "specs" / f"{name}.yaml")
        plan = archdsl.plan_model(spec)
        torch.manual_seed(0)
        models = {"archdsl": archdsl.build_model(spec)}
        if not args.quick:
            models["timm"] = timm_model(name, plan.input[-1])
        models = {k: m.to(device) for k, m in models.items()}
        if device.type != "cpu":  # the layout chosen for this device; timm's model in the same one
            cl = channels_last(plan.nodes(), device.type)
            models = {k: apply_layout(m, cl) for k, m in models.items()}
        x = torch.randn(args.batch, *plan.input, device=device)
        y = torch.randint(0, plan.output[-1], (args.batch,), device=device)
        variants = [False, True] if args.compile else [False]
        if args.compile:
            torch._dynamo.reset()
        for compiled in variants:
            for mode in args.modes:
                steps = {}
                for impl, model in models.items():
                    model.train(mode == "train")
                    # static shapes, a fresh dynamo cache per model: archdsl's models share their forward code, and
                    # a second input size would otherwise recompile it with symbolic sizes inductor can fail on
                    m = torch.compile(model, dynamic=False) if compiled else model
                    steps[impl] = train_step(m, x, y, autocast) if mode == "train" else eval_step(m, x, autocast)
                ms = alternate(steps, rounds=rounds, warmup=warmup + (2 if compiled else 0), device=device)
                flops = plan.flops * (3 if mode == "train" else 1) * args.batch
                for impl, step in steps.items():
                    gflops = flops / (ms[impl] * 1e-3) / 1e9
                    rows.append(
                        {
                            "model": name,
                            "impl": impl,
                            "mode": mode,
                            "compiled": compiled,
                            "batch": args.batch,
                            "ms": round(ms[impl], 2),
                            "img_per_s": round(args.batch / (ms[impl] * 1e-3), 2),
                            "peak_mb": round(peak_mb(step, device), 1),
                            "gflops_per_s": round(gflops, 2),
                            "mm_fraction": round(gflops / mm_rate, 3),
                        }
                    )
    add_speedups(rows, ("model", "mode", "compiled"))
    info = machine(device) | {
        "matmul_gflops": round(mm_rate, 1),
        "bf16": args.bf16,
        "quick": args.quick,
        "rounds": rounds,
    }
    report(
        info,
        rows,
        [
            "model",
            "impl",
            "mode",
            "compiled",
            "batch",
            "ms",
            "img_per_s",
            "peak_mb",
            "gflops_per_s",
            "mm_fraction",
            "speedup_vs_timm",
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
