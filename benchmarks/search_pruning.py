"""What a search spends to find its best architecture: six strategies on the same space and trial budget.

For each seed every strategy searches the same digits space (8 px, 8 epochs a trial) with the same budget of
trained trials. The target is the best val/acc of the TPE + median search (archdsl's default before this
benchmark); each strategy's cost is the training it spent until it first reached that target: epochs over the
whole training split at full size (``cost_epochs``: a rung on part of the data or at a lower resolution costs
its share) and wall seconds. Strategies:

- ``tpe_median``: TPE + the median pruner (first decision after epoch 3, as before this benchmark);
- ``tpe_median_again``: the same strategy on other random draws (sampler seed + 1000): what a strategy exactly
  as good as the baseline measures against the baseline's own best, the floor of this metric's noise;
- ``random``: random sampling, every trial trained in full;
- ``tpe_sh``: TPE + Optuna's successive halving over epochs (rungs after epochs 2 and 6, eta 3: the first rung
  comes after the base recipe's one warm-up epoch; a rung inside it ranks how far the warm-up got);
- ``tpe_sh_data``: TPE + successive halving over the training data (rungs at 1/9, 1/3, all of it);
- ``prescreen_sh``: ``tpe_sh`` whose proposals are prescreened (``--proxy``; the best ``keep`` of every ``pool``
  trained; screened proposals cost no epoch, their scoring is in the wall time).

Prints a table per seed and, summed over seeds, each strategy's epochs to the target over tpe_median's; a
strategy that never reaches the target in its budget is shown as such and counted with everything it spent
(a lower bound). Writes JSON. Run: python -m benchmarks.search_pruning --jobs 3 (about 25 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archdsl.launch.run import run_search
from archdsl.search.record import TrialRecord
from archdsl.search.space import search_from_text

ROOT = Path(__file__).resolve().parent.parent
SPACE = """\
base: {base}
budget: {{trials: {trials}}}
sampler: {{name: {sampler}, seed: {seed}, startup_trials: 5}}
pruner: {pruner}
{prescreen}
params:
  conv_stages: {{int: [0, 3]}}
  stem.kernel_size: {{choice: [3, 5]}}
  stages.*.blocks.*.mixer.halo_size: {{int: [1, 2]}}
  stages.*.blocks.*.mixer.num_heads: {{choice: [2, 4]}}
  stages.2.channels: {{choice: [64, 128]}}
  train.optimizer.lr: {{float: [{lr_low}, {lr_high}], log: true}}
  train.epochs: {{choice: [{epochs}]}}
  input.size: {{choice: [8]}}
"""


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str
    pruner: str
    prescreen: bool = False
    seed_offset: int = 0
    """Added to the sampler's seed: ``tpe_median_again`` is the baseline itself on other random draws."""


STRATEGIES = (
    # the first decision after epoch 3, as the default search of archdsl decided before this benchmark
    Strategy("tpe_median", "tpe", "{name: median, warmup_epochs: 3, startup_trials: 3}"),
    Strategy("tpe_median_again", "tpe", "{name: median, warmup_epochs: 3, startup_trials: 3}", seed_offset=1000),
    Strategy("random", "random", "{name: none}"),
    Strategy("tpe_sh", "tpe", "{name: successive_halving, fidelity: epochs, min_fidelity: 2, reduction_factor: 3}"),
    Strategy("tpe_sh_data", "tpe", "{name: successive_halving, fidelity: data, reduction_factor: 3}"),
    Strategy(
        "prescreen_sh",
        "tpe",
        "{name: successive_halving, fidelity: epochs, min_fidelity: 2, reduction_factor: 3}",
        prescreen=True,
    ),
)
BASELINE = "tpe_median"


def run(strategy: Strategy, args: argparse.Namespace, seed: int, work: Path) -> dict:
    prescreen = (
        f"prescreen: {{proxy: {args.proxy}, pool: {args.pool}, keep: {args.keep}}}" if strategy.prescreen else ""
    )
    text = SPACE.format(
        base=ROOT / "specs" / "digits_search_base.yaml",
        trials=args.trials,
        sampler=strategy.sampler,
        pruner=strategy.pruner,
        prescreen=prescreen,
        seed=seed + strategy.seed_offset,
        epochs=args.epochs,
        lr_low=args.lr[0],
        lr_high=args.lr[1],
    )
    space = search_from_text(text, f"{strategy.name}.yaml", ROOT / "search")
    start = time.perf_counter()
    result = run_search(space, work / strategy.name, progress=False, study_name=strategy.name)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=strategy.name, storage=result.storage)
    curve = []  # (cumulative epochs, seconds since the start, best val/acc so far) after each trained trial
    spent, best = 0.0, 0.0
    for t in sorted(study.trials, key=lambda t: t.number):
        if TrialRecord.of(t).screened:
            continue
        # cost_epochs: epochs over the whole training split at full size (a data or resolution rung costs less)
        spent += float(t.user_attrs.get("cost_epochs", t.user_attrs.get("epochs", 0)) or 0)
        if t.state == TrialState.COMPLETE:
            best = max(best, t.values[0])
        end = t.datetime_complete or t.datetime_start
        wall = (end - study.trials[0].datetime_start).total_seconds() if end and study.trials[0].datetime_start else 0
        curve.append((spent, round(wall, 2), best))
    return {
        "strategy": strategy.name,
        "seconds": round(seconds, 1),
        "epochs": spent,
        "best": best,
        "curve": curve,
        "trials": result.trials,
    }


def to_reach(curve: list[tuple[float, float, float]], target: float) -> tuple[float, float] | None:
    """Epochs and seconds spent when the best val/acc first reached ``target`` (None: never)."""
    return next(((spent, wall) for spent, wall, best in curve if best >= target - 1e-12), None)


def one_seed(chosen: list[Strategy], args: argparse.Namespace, seed: int) -> dict:
    """Every strategy on one seed (its own process under ``--jobs``), against tpe_median's best."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(s, args, seed, Path(tmp)) for s in chosen]
    target = next(r["best"] for r in runs if r["strategy"] == BASELINE)
    for r in runs:
        reached = to_reach(r["curve"], target)
        r["reached"] = reached is not None
        r["epochs_to_target"], r["seconds_to_target"] = reached or (r["epochs"], r["seconds"])
    print(f"seed {seed} done: target {target:.4f}", file=sys.stderr, flush=True)
    return {"seed": seed, "target": target, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=[s.name for s in STRATEGIES])
    parser.add_argument("--proxy", default="naswot", help="the prescreen's proxy (python -m benchmarks.proxies)")
    parser.add_argument(
        "--lr", type=float, nargs=2, default=[1.0e-4, 3.0e-2], metavar=("LOW", "HIGH"), help="learning-rate range"
    )
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--keep", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each seed's process")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "search_pruning.json"))
    args = parser.parse_args()
    chosen = [s for s in STRATEGIES if s.name in args.strategies]
    if BASELINE not in {s.name for s in chosen}:
        parser.error(f"the target comes from {BASELINE}: keep it among --strategies")
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        per_seed = list(pool.map(partial(one_seed, chosen, args), args.seeds))
    print(
        f"same space and budget per seed: {args.trials} trained trials x up to {args.epochs} epochs (digits, 8 px, "
        f"lr {args.lr[0]:g}-{args.lr[1]:g})"
    )
    print(f"target: the best val/acc of {BASELINE}; prescreen: {args.proxy}, best {args.keep} of every {args.pool}")
    print(
        f"{'seed':>4} {'strategy':<14} {'best val/acc':>12} {'epochs total':>12} {'epochs to target':>16} "
        f"{'s to target':>11} {'target':>7} {'seconds':>8}"
    )
    for s in per_seed:
        for r in s["runs"]:
            mark = "" if r["reached"] else " (never)"
            print(
                f"{s['seed']:>4} {r['strategy']:<14} {r['best']:>12.4f} {r['epochs']:>12.1f} "
                f"{r['epochs_to_target']:>16.1f}{mark} {r['seconds_to_target']:>11.0f} {s['target']:>7.4f} "
                f"{r['seconds']:>8}"
            )
    base = sum(r["epochs_to_target"] for s in per_seed for r in s["runs"] if r["strategy"] == BASELINE)
    base_s = sum(r["seconds_to_target"] for s in per_seed for r in s["runs"] if r["strategy"] == BASELINE)
    summary = {}
    print(f"summed over seeds, against {BASELINE} ({base:.1f} epochs, {base_s:.0f} s to its best):")
    for strategy in chosen:
        runs = [r for s in per_seed for r in s["runs"] if r["strategy"] == strategy.name]
        epochs, seconds = sum(r["epochs_to_target"] for r in runs), sum(r["seconds_to_target"] for r in runs)
        reached = sum(r["reached"] for r in runs)
        summary[strategy.name] = {
            "epochs_to_target": epochs,
            "seconds_to_target": seconds,
            "epoch_ratio": epochs / base if base else None,
            "seconds_ratio": seconds / base_s if base_s else None,
            "reached": reached,
        }
        print(
            f"  {strategy.name:<14} {epochs:>7.1f} epochs ({epochs / base:.2f}x)  {seconds:>6.0f} s "
            f"({seconds / base_s:.2f}x)  reached the target in {reached} of {len(runs)} seeds"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "seeds": per_seed, "args": vars(args)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
