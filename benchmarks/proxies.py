"""How well each zero-cost proxy predicts trained accuracy on the digits search space.

``--archs`` architectures of ``search/digits.yaml`` are drawn by Optuna's seeded ``RandomSampler`` (feasible ones
only: a broken shape rule or a budget limit refuses a draw, as in a search), the same set for every proxy. Each
is scored by every proxy untrained (:func:`archdsl.search.proxies.score`, one seeded batch of 64 training
images, the same for all), then trained with the search's own settings (the base spec and the trial's
parameters, learning rate included; ``--epochs`` lowers the epochs, default: the search's) and its best
``val/acc`` recorded. Rows, per proxy: Spearman's rho and Kendall's tau between the proxy and ``val/acc``
(scipy, with p-values), ``top1_acc`` (the trained ``val/acc`` of the architecture the proxy ranks first, beside
``best_acc``, the best of all) and the measured seconds per candidate (build + score, mean). The JSON also holds
every architecture (parameters, scores, ``val/acc``, training seconds). Trained runs are kept under ``--out``
(``result.json`` per architecture): a rerun with the same options reuses them.

Run: ``nohup python -m benchmarks.proxies --json benchmarks/results/proxies.json > /tmp/proxies_bench.log 2>&1 &``
(tens of minutes on 2 CPU cores; one torch thread: on a shared 2-core machine 3 epochs took 15 s with one thread
and 89 s with two); ``--quick``: 3 architectures, 1 epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from archdsl.atomic import atomic_write_text
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.proxies import load_batch, proxy_names, sample, score
from archdsl.search.space import load_search
from benchmarks.common import machine, pick_device, pin_threads, table

ROOT = Path(__file__).resolve().parent.parent
SEARCH = ROOT / "search" / "digits.yaml"


def feasible(n: int, seed: int) -> list[tuple[int, dict[str, Any], PlannedSpec]]:
    """The first ``n`` feasible draws of the digits space (seeded random sampling)."""
    space = load_search(SEARCH)
    found: list[tuple[int, dict[str, Any], PlannedSpec]] = []
    for number, params, planned in sample(space, 20 * n, seed):
        if isinstance(planned, PlannedSpec):
            found.append((number, params, planned))
            if len(found) == n:
                return found
    raise SystemExit(f"only {len(found)} feasible architectures in {20 * n} draws")


def with_epochs(planned: PlannedSpec, epochs: int | None) -> PlannedSpec:
    if epochs is None or epochs == planned.spec.train.epochs:
        return planned
    spec = planned.spec
    return plan_spec(spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": epochs})}))


def train(planned: PlannedSpec, out: Path, device: str) -> tuple[float, float]:
    """Trained best ``val/acc`` and seconds; reuses a finished run of the same epochs in ``out``."""
    done = out / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("epochs") == planned.spec.train.epochs:
            return float(result["val/acc"]), float(result["seconds"])
    from archdsl.train.fit import fit
    from archdsl.train.placement import parse_device

    fitted = fit(planned, out, force=True, progress=False, test=False, placement=parse_device(device))
    return fitted.val_acc, fitted.seconds


def correlations(scores: list[float], accs: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    rho = spearmanr(scores, accs, nan_policy="omit")
    tau = kendalltau(scores, accs, nan_policy="omit")
    return {
        "spearman": round(float(rho.statistic), 4),
        "spearman_p": float(f"{float(rho.pvalue):.3g}"),
        "kendall": round(float(tau.statistic), 4),
        "kendall_p": float(f"{float(tau.pvalue):.3g}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=40, help="architectures trained and scored")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the search's)")
    parser.add_argument("--seed", type=int, default=0, help="sampler, batch and initialisation seed")
    parser.add_argument("--batch", type=int, default=64, help="images the proxies score")
    parser.add_argument("--out", default="runs/bench/proxies", help="training runs (reused by a rerun)")
    parser.add_argument("--json", help="write the table and every architecture here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest for these tiny models)")
    parser.add_argument("--quick", action="store_true", help="3 architectures, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.epochs = 3, 1
    pin_threads(args.threads)
    device = pick_device(args.device)
    names = proxy_names()
    archs: list[dict[str, Any]] = []
    seconds: dict[str, list[float]] = {n: [] for n in names}
    drawn = feasible(args.archs, args.seed)
    for i, (number, params, planned) in enumerate(drawn, 1):
        planned = with_epochs(planned, args.epochs)
        batch = load_batch(planned.spec, seed=args.seed, device=str(device), size=args.batch)
        scores: dict[str, float] = {}
        for name in names:  # one proxy at a time: each is timed alone (model built, scored, discarded)
            start = time.perf_counter()
            scores.update(score(planned, [name], batch, seed=args.seed))
            seconds[name].append(time.perf_counter() - start)
        out = Path(args.out) / f"e{planned.spec.train.epochs}_s{args.seed}" / f"trial_{number}"
        acc, train_seconds = train(planned, out, str(device))
        archs.append(
            {
                "trial": number,
                "params": params,
                "model_params": planned.plan.params,
                "flops": planned.plan.flops,
                "scores": {k: v if math.isfinite(v) else None for k, v in scores.items()},
                "val/acc": acc,
                "train_seconds": train_seconds,
            }
        )
        print(
            f"[{i}/{len(drawn)}] trial {number}: val/acc {acc:.4f} in {train_seconds:.0f} s; "
            + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()),
            file=sys.stderr,
            flush=True,
        )
    accs = [float(a["val/acc"]) for a in archs]
    rows: list[dict[str, object]] = []
    for name in names:
        values = [float(a["scores"][name]) if a["scores"][name] is not None else -math.inf for a in archs]
        top = max(range(len(archs)), key=lambda k: (values[k], -k))
        rows.append(
            {
                "proxy": name,
                **correlations(values, accs),
                "top1_acc": round(accs[top], 4),
                "best_acc": round(max(accs), 4),
                "s_per_candidate": round(statistics.mean(seconds[name]), 4),
            }
        )
    rows.sort(key=lambda r: -float(r["spearman"]) if not math.isnan(float(r["spearman"])) else math.inf)  # type: ignore[arg-type]
    info: dict[str, object] = {
        **machine(device),
        "search": "search/digits.yaml",
        "archs": len(archs),
        "epochs": drawn[0][2].spec.train.epochs if args.epochs is None else args.epochs,
        "seed": args.seed,
        "batch": args.batch,
        "quick": args.quick,
        "train_minutes": round(sum(float(a["train_seconds"]) for a in archs) / 60, 1),
        "val_acc_range": [round(min(accs), 4), round(max(accs), 4)],
    }
    columns = ["proxy", "spearman", "kendall", "spearman_p", "top1_acc", "best_acc", "s_per_candidate"]
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    print(table([{**r, "spearman_p": f"{r['spearman_p']:.2g}"} for r in rows], columns))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        document = {"machine": info, "rows": rows, "archs": archs}
        atomic_write_text(Path(args.json), json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
