"""One trial: resolve -> plan -> reject early (no weights) -> build -> train with pruning -> objectives."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna

from archdsl.errors import ArchDSLError
from archdsl.plan.planner import plan_model
from archdsl.search.pruning import PruningCallback
from archdsl.search.resolve import resolve
from archdsl.search.space import SearchSpace
from archdsl.spec.load import spec_to_data

__all__ = ["Objective", "reject", "trial_dir"]

TRIALS_DIR = "trials"


def trial_dir(out: Path, number: int) -> Path:
    return out / TRIALS_DIR / f"{number:04d}"


def reject(trial: optuna.Trial, reason: str, started: float) -> optuna.TrialPruned:
    """Record why the trial was refused before training; the caller raises the returned exception."""
    trial.set_user_attr("rejected", True)
    trial.set_user_attr("reason", reason)
    trial.set_user_attr("reject_ms", round((time.perf_counter() - started) * 1e3, 3))
    return optuna.TrialPruned(f"rejected before training: {reason}")


class Objective:
    """Callable for ``study.optimize``; returns the values of the search's objectives, in order."""

    def __init__(self, space: SearchSpace, out: Path, *, allow_import: bool = False) -> None:
        self.space = space
        self.out = out
        self.allow_import = allow_import
        self.monitor = next((m for m in space.objective_names if m in ("val/acc", "val/loss")), "val/acc")

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        started = time.perf_counter()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        budget = self.space.definition.budget
        try:
            spec = resolve(self.space, trial)
            plan = plan_model(spec)
        except ArchDSLError as err:
            raise reject(trial, "; ".join(f"{p.path}: {p.message}" for p in err.problems), started) from None
        trial.set_user_attr("params", plan.params)
        trial.set_user_attr("flops", plan.flops)
        if budget.max_params is not None and plan.params > budget.max_params:
            raise reject(trial, f"params {plan.params:,} > budget.max_params {budget.max_params:,}", started)
        if budget.max_flops is not None and plan.flops > budget.max_flops:
            raise reject(trial, f"flops {plan.flops:,} > budget.max_flops {budget.max_flops:,}", started)
        metrics: dict[str, float] = {"params": float(plan.params), "flops": float(plan.flops)}
        if budget.max_latency_ms is not None or "latency_ms" in self.space.objective_names:
            metrics["latency_ms"] = self._latency(spec, plan.input)
            trial.set_user_attr("latency_ms", metrics["latency_ms"])
            if budget.max_latency_ms is not None and metrics["latency_ms"] > budget.max_latency_ms:
                raise reject(
                    trial,
                    f"latency {metrics['latency_ms']:.2f} ms > budget.max_latency_ms {budget.max_latency_ms}",
                    started,
                )
        trial.set_user_attr("spec", spec_to_data(spec))
        if set(self.space.objective_names) <= {"params", "flops", "latency_ms"}:
            return self._values(metrics)  # nothing to train for
        metrics.update(self._train(trial, spec))
        return self._values(metrics)

    def _train(self, trial: optuna.Trial, spec: Any) -> dict[str, float]:
        from archdsl.train.fit import fit

        out = trial_dir(self.out, trial.number)
        pruning = len(self.space.objective_names) == 1 and self.space.definition.pruner.name != "none"
        callback = PruningCallback(trial, self.monitor)
        try:
            result = fit(
                spec,
                out,
                force=True,
                progress=False,
                allow_import=self.allow_import,
                callbacks=[callback] if pruning else [],
            )
        except optuna.TrialPruned:
            trial.set_user_attr("epochs", callback.epochs)
            if (out / "best.ckpt").is_file():
                trial.set_user_attr("checkpoint", str((out / "best.ckpt").relative_to(self.out)))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except ArchDSLError as err:
            trial.set_user_attr("error", "; ".join(str(p) for p in err.problems))
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise
        trial.set_user_attr("checkpoint", str(Path(result.checkpoint).relative_to(self.out.resolve())))
        trial.set_user_attr("val/acc", result.val_acc)
        trial.set_user_attr("val/loss", result.val_loss)
        trial.set_user_attr("test/acc", result.test_acc)
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("epochs", result.epochs)
        return {"val/acc": result.val_acc, "val/loss": result.val_loss}

    def _latency(self, spec: Any, input_shape: tuple[int, ...]) -> float:
        import torch

        from archdsl.compiler.build import build_model
        from archdsl.compiler.latency import measure_latency_ms

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return round(measure_latency_ms(build_model(spec, device=device), input_shape), 4)

    def _values(self, metrics: dict[str, float]) -> float | list[float]:
        values = [metrics[name] for name in self.space.objective_names]
        return values[0] if len(values) == 1 else values
