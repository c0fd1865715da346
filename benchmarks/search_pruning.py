"""TPE + median pruning against random search without pruning, on the same space and trial budget.

For each seed both strategies search the same space with the same trial budget; the target is the best
val/acc that both reach (the lower of the two bests), and we count the training epochs each spent until
it first reached it. Prints a table per seed and the ratio of the summed epochs (TPE + pruning / random),
and writes JSON. Run: python benchmarks/search_pruning.py (about 10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archdsl.launch.run import run_search
from archdsl.search.space import search_from_text

ROOT = Path(__file__).resolve().parent.parent
SPACE = """\
base: {base}
budget: {{trials: {trials}}}
sampler: {{name: {sampler}, seed: {seed}, startup_trials: 5}}
pruner: {{name: {pruner}, warmup_epochs: 2, startup_trials: 3}}
params:
  conv_stages: {{int: [0, 3]}}
  stem.kernel_size: {{choice: [3, 5]}}
  stages.*.blocks.*.mixer.halo_size: {{int: [1, 2]}}
  stages.*.blocks.*.mixer.num_heads: {{choice: [2, 4]}}
  stages.2.channels: {{choice: [64, 128]}}
  train.optimizer.lr: {{float: [1.0e-4, 3.0e-2], log: true}}
  train.epochs: {{choice: [{epochs}]}}
  input.size: {{choice: [8]}}
"""


def run(strategy: str, sampler: str, pruner: str, trials: int, epochs: int, seed: int, work: Path) -> dict:
    text = SPACE.format(
        base=ROOT / "specs" / "digits_search_base.yaml",
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        epochs=epochs,
    )
    space = search_from_text(text, f"{strategy}.yaml", ROOT / "search")
    start = time.perf_counter()
    result = run_search(space, work / strategy, progress=False, study_name=strategy)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=strategy, storage=result.storage)
    curve = []  # (cumulative epochs, best val/acc so far) after each trial, in trial order
    spent, best = 0, 0.0
    for t in sorted(study.trials, key=lambda t: t.number):
        spent += int(t.user_attrs.get("epochs", 0) or 0)
        if t.state == TrialState.COMPLETE:
            best = max(best, t.values[0])
        curve.append((spent, best))
    return {
        "strategy": strategy,
        "seconds": round(seconds, 1),
        "epochs": spent,
        "best": best,
        "curve": curve,
        "trials": result.trials,
    }


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((spent for spent, best in curve if best >= target - 1e-12), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "search_pruning.json"))
    args = parser.parse_args()
    per_seed = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [
                run("tpe_median", "tpe", "median", args.trials, args.epochs, seed, Path(tmp)),
                run("random_nopruning", "random", "none", args.trials, args.epochs, seed, Path(tmp)),
            ]
        target = min(r["best"] for r in runs)
        for r in runs:
            r["epochs_to_target"] = epochs_to_reach(r["curve"], target)
        per_seed.append({"seed": seed, "target": target, "runs": runs})
    print(f"same space and budget per seed: {args.trials} trials x up to {args.epochs} epochs (digits, 8 px)")
    print(
        f"{'seed':>4} {'strategy':<18} {'best val/acc':>12} {'epochs total':>12} {'epochs to target':>16} "
        f"{'target':>7} {'seconds':>8}"
    )
    for s in per_seed:
        for r in s["runs"]:
            print(
                f"{s['seed']:>4} {r['strategy']:<18} {r['best']:>12.4f} {r['epochs']:>12} "
                f"{r['epochs_to_target']!s:>16} {s['target']:>7.4f} {r['seconds']:>8}"
            )
    tpe = sum(s["runs"][0]["epochs_to_target"] for s in per_seed)
    rnd = sum(s["runs"][1]["epochs_to_target"] for s in per_seed)
    ratio = tpe / rnd
    print(f"epochs to reach the common best, summed over seeds: TPE+pruning {tpe}, random {rnd}; ratio {ratio:.3f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ratio": ratio, "seeds": per_seed, "args": vars(args)}, indent=2) + "\n")
    return 0 if ratio < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
