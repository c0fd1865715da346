"""Finished trials per hour of the digits search with 1 and with 2 local workers on one study.

Both runs search ``search/digits.yaml``'s space with a random sampler and no pruning: trials are seeded by
their number, so trial k trains the same architecture in both runs and the work is equal. One worker
uses every core's thread; two workers split them (``--workers 2``: one thread each on 2 cores). Timed is
the whole command as a user runs it (process start, study creation, every trial), alternating the two
settings ``--repeats`` times; the table shows medians. The training time each trial records shows what the
cores allow: ``2 x (time on all threads alone) / (time on one thread beside the other worker)``. Run:

    python benchmarks/search_workers.py [--trials 8] [--epochs 3] [--repeats 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def definition(trials: int, epochs: int) -> str:
    """``search/digits.yaml`` with a random sampler, no pruning, ``trials`` trials of ``epochs`` epochs."""
    data = yaml.safe_load((ROOT / "search" / "digits.yaml").read_text())
    data["base"] = str(ROOT / "specs" / "digits_search_base.yaml")
    data["budget"] = {"trials": trials, "max_params": data["budget"].get("max_params", 2_000_000)}
    data["sampler"] = {"name": "random", "seed": 0}
    data["pruner"] = {"name": "none"}
    data["params"]["train.epochs"] = {"choice": [epochs]}
    return yaml.safe_dump(data, sort_keys=False)


def run_once(search: Path, out: Path, workers: int) -> dict[str, float]:
    import optuna

    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "archdsl",
            "search",
            str(search),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"search with {workers} workers failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    finished = sum(summary["trials"][k] for k in ("complete", "pruned", "rejected"))
    study = optuna.load_study(study_name=summary["study"], storage=summary["storage"])
    train = [t.user_attrs["seconds"] for t in study.get_trials(deepcopy=False) if "seconds" in t.user_attrs]
    return {
        "seconds": seconds,
        "finished": finished,
        "trials_per_hour": finished / seconds * 3600,
        "train_seconds_per_trial": statistics.mean(train),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", metavar="PATH", default=str(ROOT / "benchmarks" / "results" / "search_workers.json"))
    p.add_argument("--quick", action="store_true", help="4 trials of 1 epoch, once (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.repeats = 4, 1, 1
    cores = len(os.sched_getaffinity(0))
    rows: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        search = Path(tmp) / "digits_workers.yaml"
        search.write_text(definition(args.trials, args.epochs))
        for r in range(args.repeats):
            for workers in (1, 2):
                rows[workers].append(run_once(search, Path(tmp) / f"w{workers}_{r}", workers))
    table = []
    for workers, runs in rows.items():
        table.append(
            {
                "workers": workers,
                "threads_each": max(1, cores // workers),
                "trials": args.trials,
                "epochs": args.epochs,
                "seconds": round(statistics.median(r["seconds"] for r in runs), 1),
                "trials_per_hour": round(statistics.median(r["trials_per_hour"] for r in runs), 1),
                "runs": runs,
            }
        )
    ratio = table[1]["trials_per_hour"] / table[0]["trials_per_hour"]
    # What the cores allow: two trials side by side on one thread each, against one trial on all threads.
    per_trial = {w: statistics.median(r["train_seconds_per_trial"] for r in runs) for w, runs in rows.items()}
    ceiling = 2 * per_trial[1] / per_trial[2]
    print(f"digits search, {args.trials} trials x {args.epochs} epochs, {cores} cores, median of {args.repeats}")
    print(f"{'workers':>7} {'threads':>7} {'seconds':>8} {'trials/h':>9}")
    for row in table:
        print(f"{row['workers']:>7} {row['threads_each']:>7} {row['seconds']:>8.1f} {row['trials_per_hour']:>9.1f}")
    print(f"ratio (2 workers / 1 worker): {ratio:.2f}")
    print(
        f"training time per trial: {per_trial[1]:.2f} s on {table[0]['threads_each']} threads alone, "
        f"{per_trial[2]:.2f} s on {table[1]['threads_each']} thread beside the other worker: "
        f"the cores allow at most {ceiling:.2f}x"
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    payload = {"cores": cores, "rows": table, "ratio": round(ratio, 3), "compute_ceiling": round(ceiling, 3)}
    Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
