"""The search loop's own cost: per-trial overhead, rejections, planning.

- **overhead**: a digits search (the space of ``search/digits.yaml``, fewer trials and epochs); per trial,
  its wall time (Optuna's start to completion) minus the time spent inside training and validation steps
  (a Lightning callback around every batch, added to the real objective's callbacks), as a fraction of the
  wall time;
- **reject**: trials the objective refuses before any weight exists, one search whose every trial is over
  the parameter budget and one whose every trial is an impossible shape (a halo block that does not
  divide the map): wall time per rejected trial;
- **plan**: ``plan_model`` of ``specs/volo_d5.yaml`` and a meta-device build of it (no memory for weights).

Rows: ``{"what", "trials", "median_ms" | "median_fraction", ...}``. ``--quick`` runs 1 trial of 1 epoch
and 2 rejections of each kind.

Run: ``python -m benchmarks.search --json benchmarks/results/search.json``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from optuna.trial import TrialState

import archdsl
import archdsl.train.fit as fit_module
from archdsl.launch.run import run_search
from archdsl.search.space import search_from_text
from benchmarks.common import machine, pick_device, pin_threads, report

ROOT = Path(__file__).resolve().parent.parent
DIGITS = """\
base: {base}
budget: {{trials: {trials}}}
sampler: {{name: tpe, seed: 0, startup_trials: 4}}
pruner: {{name: none}}
params:
  conv_stages: {{int: [0, 3]}}
  stem.kernel_size: {{choice: [3, 5]}}
  stages.*.blocks.*.mixer.halo_size: {{int: [1, 2]}}
  stages.*.blocks.*.mixer.num_heads: {{choice: [2, 4]}}
  stages.2.channels: {{choice: [96, 128, 192]}}
  train.optimizer.lr: {{float: [1.5e-3, 6.0e-3], log: true}}
  train.epochs: {{choice: [{epochs}]}}
"""
OVER_BUDGET = """\
base: {base}
budget: {{trials: {trials}, max_params: 100_000}}
sampler: {{name: random, seed: 0}}
params:
  stages.2.channels: {{int: [512, 1024]}}
"""
IMPOSSIBLE = """\
base: {base}
budget: {{trials: {trials}}}
sampler: {{name: random, seed: 0}}
params:
  stages.*.blocks.*.mixer.block_size: {{choice: [3, 5]}}
"""


class StepClock(Callback):
    """Seconds spent inside training and validation batches (forward, backward, optimiser step)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def _begin(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _end(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start

    on_train_batch_start = _begin
    on_train_batch_end = _end
    on_validation_batch_start = _begin
    on_validation_batch_end = _end


def search(text: str, work: Path, name: str) -> optuna.Study:
    space = search_from_text(text, f"{name}.yaml", ROOT / "search")
    result = run_search(space, work / name, progress=False, study_name=name)
    return optuna.load_study(study_name=name, storage=result.storage)


def trial_seconds(study: optuna.Study) -> list[float]:
    return [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in sorted(study.trials, key=lambda t: t.number)
        if t.datetime_complete is not None and t.datetime_start is not None
    ]


def overhead(trials: int, epochs: int, work: Path) -> dict[str, object]:
    clocks: list[StepClock] = []
    real_fit: Callable[..., Any] = fit_module.fit

    def timed_fit(*args: Any, callbacks: list[Callback] | tuple[Callback, ...] = (), **kwargs: Any) -> Any:
        clocks.append(StepClock())
        return real_fit(*args, callbacks=[*callbacks, clocks[-1]], **kwargs)

    fit_module.fit = timed_fit  # the objective imports fit at call time: every trial's fit gets a StepClock
    try:
        study = search(
            DIGITS.format(base=ROOT / "specs" / "digits_search_base.yaml", trials=trials, epochs=epochs),
            work,
            "overhead",
        )
    finally:
        fit_module.fit = real_fit
    walls = trial_seconds(study)
    trained = [t for t in sorted(study.trials, key=lambda t: t.number) if t.state == TrialState.COMPLETE]
    if len(trained) != len(clocks):
        raise RuntimeError(f"{len(clocks)} fits for {len(trained)} completed trials")
    fractions = [(w - c.seconds) / w for w, c in zip(walls, clocks, strict=True)]
    return {
        "what": "per-trial overhead (digits search)",
        "trials": len(walls),
        "epochs": epochs,
        "median_trial_s": round(statistics.median(walls), 2),
        "median_overhead_s": round(statistics.median(w - c.seconds for w, c in zip(walls, clocks, strict=True)), 3),
        "median_fraction": round(statistics.median(fractions), 4),
        "max_fraction": round(max(fractions), 4),
    }


def rejections(trials: int, work: Path) -> list[dict[str, object]]:
    base = ROOT / "specs" / "digits_search_base.yaml"
    rows = []
    for name, text in (("over budget", OVER_BUDGET), ("impossible shape", IMPOSSIBLE)):
        study = search(text.format(base=base, trials=trials), work, name.replace(" ", "_"))
        rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
        if len(rejected) != len(study.trials):
            raise RuntimeError(f"{name}: {len(study.trials) - len(rejected)} trials were not rejected")
        walls = trial_seconds(study)
        inside = statistics.median(float(t.user_attrs["reject_ms"]) for t in rejected)  # the objective's own clock
        rows.append(
            {
                "what": f"reject: {name}",
                "trials": len(walls),
                "median_ms": round(statistics.median(walls) * 1e3, 2),
                "max_ms": round(max(walls) * 1e3, 2),
                "median_reject_ms": round(inside, 2),
            }
        )
    return rows


def planning(repeats: int) -> list[dict[str, object]]:
    spec = archdsl.load_spec(ROOT / "specs" / "volo_d5.yaml")
    archdsl.plan_model(spec)  # warm imports and registries
    rows = []
    for what, fn in (
        ("plan volo_d5", lambda: archdsl.plan_model(spec)),
        ("meta-build volo_d5", lambda: archdsl.build_model(spec, device="meta")),
    ):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        rows.append(
            {
                "what": what,
                "trials": repeats,
                "median_ms": round(statistics.median(times), 2),
                "max_ms": round(max(times), 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 trial of 1 epoch, 2 rejections of each kind")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    L.seed_everything(0, verbose=False)
    trials, epochs, rejects = (1, 1, 2) if args.quick else (args.trials, args.epochs, 10)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [overhead(trials, epochs, work), *rejections(rejects, work), *planning(5 if args.quick else 20)]
    info = machine(pick_device("cpu")) | {"quick": args.quick}
    report(
        info,
        rows,
        [
            "what",
            "trials",
            "median_trial_s",
            "median_overhead_s",
            "median_fraction",
            "max_fraction",
            "median_ms",
            "max_ms",
            "median_reject_ms",
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
