"""Batch-1 latency of the same architecture in each runtime ``budget.latency`` can time: eager PyTorch, ONNX Runtime
and the ``torch.export`` program's module.

Architectures: three of ``search/digits.yaml`` (all attention, one conv stage, all conv; 16 px) and
``specs/resnet50.yaml`` at its real 224 px. Each is built with fresh weights (seed 0) and handed to every runtime of
:mod:`archdsl.compiler.runtimes` as a search trial's latency is (the exported programs are the ones ``archdsl
export`` writes, made in memory); the runtimes' outputs are checked against eager first (``max_diff``). Then the
runners alternate, one timed batch-1 inference each per round, after warm-up (``benchmarks/common.py``): medians.
One intra-op thread in torch and in ONNX Runtime (``--threads``).

Rows: ``{"model", "input", "params", "runtime", "ms", "vs_eager", "prepare_s", "max_diff"}``: ``vs_eager`` is eager's
median over this runtime's (above 1: faster than eager); ``prepare_s`` the seconds to export the program and open
it (what each trial of a search pays once). ``--quick`` times one digits architecture, few rounds (CI).

Run: ``python -m benchmarks.latency_runtimes --json benchmarks/results/latency_runtimes.json``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, cast

import optuna
import torch

import archdsl
from archdsl.compiler.build import build_from_plan
from archdsl.compiler.runtimes import RUNTIMES
from archdsl.planner import plan_spec
from archdsl.search.space import load_search, resolve
from archdsl.spec.model import ModelSpec
from benchmarks.common import alternate, machine, pick_device, pin_threads, report

ROOT = Path(__file__).resolve().parent.parent
DIGITS: dict[str, dict[str, Any]] = {
    "digits attention": {"conv_stages": 0, "stages.1.blocks.0.repeat": 1, "stages.2.channels": 128},
    "digits conv_stages=1": {"conv_stages": 1, "stages.1.blocks.0.repeat": 2, "stages.2.channels": 128},
    "digits conv": {"conv_stages": 3, "stages.1.blocks.0.repeat": 2, "stages.2.channels": 192},
}
"""Architectures of search/digits.yaml, by the parameters that set their stage mix, depth and width."""
SHARED = {
    "stem.kernel_size": 3,
    "stages.*.blocks.*.mixer.kernel_size": 3,
    "stages.*.blocks.*.mixer.halo_size": 1,
    "stages.*.blocks.*.mixer.block_size": 4,
    "stages.*.blocks.*.mixer.num_heads": 4,
    "train.optimizer.lr": 3.0e-3,
}
ZOO = ("resnet50",)
QUICK = ("digits conv_stages=1",)
RUNTIME_ORDER = ("eager", "onnxruntime", "torch_export")
TOLERANCE = 1e-4
"""Largest difference from eager's output allowed, relative to its largest logit (at least 1)."""


def architectures(quick: bool) -> dict[str, ModelSpec]:
    """Name -> spec: the digits architectures resolved from the search file as a trial would be, then the zoo."""
    space = load_search(ROOT / "search" / "digits.yaml")
    specs = {
        name: resolve(space, cast(optuna.Trial, optuna.trial.FixedTrial({**SHARED, **params})))  # duck-typed
        for name, params in DIGITS.items()
        if not quick or name in QUICK
    }
    if not quick:
        specs |= {name: archdsl.load_spec(ROOT / "specs" / f"{name}.yaml") for name in ZOO}
    return specs


def rows_of(name: str, spec: ModelSpec, threads: int, rounds: int, warmup: int) -> list[dict[str, object]]:
    plan = plan_spec(spec).plan
    torch.manual_seed(0)
    model = build_from_plan(plan, "cpu").eval()
    x = torch.randn(1, *plan.input)
    runners, prepare_s = {}, {}
    for runtime in RUNTIME_ORDER:
        start = time.perf_counter()
        runners[runtime] = RUNTIMES.get(runtime).prepare(model, x, threads)
        prepare_s[runtime] = time.perf_counter() - start
    with torch.no_grad():
        expected = runners["eager"]()
        diffs = {}
        for runtime, run in runners.items():
            diffs[runtime] = float((run() - expected).abs().max())
            if diffs[runtime] > TOLERANCE * max(1.0, float(expected.abs().max())):  # the same model, or no comparison
                raise RuntimeError(f"{name}: {runtime}'s output is {diffs[runtime]:.1e} away from eager's")
        ms = alternate(runners, rounds, warmup, torch.device("cpu"))
    return [
        {
            "model": name,
            "input": "x".join(map(str, plan.input)),
            "params": plan.params,
            "runtime": runtime,
            "ms": round(ms[runtime], 3),
            "vs_eager": round(ms["eager"] / ms[runtime], 2),
            "prepare_s": round(prepare_s[runtime], 2),
            "max_diff": f"{diffs[runtime]:.1e}",
        }
        for runtime in RUNTIME_ORDER
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the table here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="one digits architecture, few rounds")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rounds, warmup = (4, 1) if args.quick else (args.rounds, 5)
    rows: list[dict[str, object]] = []
    for name, spec in architectures(args.quick).items():
        rows += rows_of(name, spec, args.threads, rounds, warmup)
    info = machine(pick_device("cpu")) | {"quick": args.quick}
    columns = ["model", "input", "params", "runtime", "ms", "vs_eager", "prepare_s", "max_diff"]
    report(info, rows, columns, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
