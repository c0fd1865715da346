"""Studies: storage, creation once before any trial, resuming to the budget, reaping dead trials, results."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.errors import SearchError
from archdsl.search.objective import Objective
from archdsl.search.space import SearchSpace

__all__ = [
    "SearchResult",
    "best_trials",
    "count_trials",
    "default_storage",
    "make_sampler",
    "open_study",
    "run_search",
]

FINGERPRINT = "archdsl_fingerprint"
SEARCH = "archdsl_search"
OUT_DIR = "archdsl_out"


def default_storage(out: Path) -> str:
    """The embedded default: an SQLite file in the search's output directory."""
    return f"sqlite:///{(out / 'study.db').resolve()}"


def absolute_storage(url: str) -> str:
    """``sqlite:///relative.db`` -> an absolute URL (other URLs unchanged)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def make_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    s = space.definition.sampler
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed)
    if s.name == "grid":
        from archdsl.search.definition import BlockChoiceParam, ChoiceParam, IntParam

        grid: dict[str, list[Any]] = {}
        for key, p in space.definition.params.items():
            if isinstance(p, IntParam):
                grid[key] = list(range(p.int_range[0], p.int_range[1] + 1, p.step))
            elif isinstance(p, (ChoiceParam, BlockChoiceParam)):
                grid[key] = list(p.choice)
        return optuna.samplers.GridSampler(grid, seed=s.seed)
    return optuna.samplers.TPESampler(
        seed=s.seed, n_startup_trials=s.startup_trials, multivariate=True, constant_liar=True
    )


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    p = space.definition.pruner
    if p.name == "none" or len(space.objective_names) > 1:
        return optuna.pruners.NopPruner()
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs))
    return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)


def open_study(
    space: SearchSpace, storage: str, study_name: str, out: Path, *, new_study: bool = False
) -> optuna.Study:
    """Create the study once (before any trial runs) or load it; refuse a study of another search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if new_study:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=storage)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=space.directions,  # type: ignore[arg-type]  # 'maximize' | 'minimize'
        sampler=make_sampler(space),
        pruner=make_pruner(space),
        load_if_exists=True,
    )
    stored = study.user_attrs.get(FINGERPRINT)
    if stored is None:
        study.set_user_attr(FINGERPRINT, space.fingerprint())
        study.set_user_attr(SEARCH, space.to_data())
        study.set_user_attr(OUT_DIR, str(out.resolve()))
    elif stored != space.fingerprint():
        raise SearchError.at(
            "",
            f"study '{study_name}' in {storage} was made by a different search definition or base spec; "
            "pass --new-study to replace it, or --study NAME to start another",
            space.doc.locate(()),
        )
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose process on this host is gone (SIGKILL) and queue their parameters again.

    Trials stopped by Ctrl-C are FAIL with ``interrupted``; they are queued again too (once).
    """
    host = socket.gethostname()
    storage = study._storage  # the public Study API has no "fail this trial" call
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    requeued = []
    for t in study.get_trials(deepcopy=False):
        dead = (
            t.state == TrialState.RUNNING
            and t.user_attrs.get("host") == host
            and isinstance(t.user_attrs.get("pid"), int)
            and t.user_attrs["pid"] != os.getpid()
            and not _pid_alive(t.user_attrs["pid"])
        )
        if dead:
            storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if (dead or (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))) and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            requeued.append(t.number)
    return requeued


def count_trials(study: optuna.Study) -> dict[str, int]:
    """``complete``, ``pruned`` (during training), ``rejected`` (before training), ``fail``."""
    counts = {"complete": 0, "pruned": 0, "rejected": 0, "fail": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            counts["rejected" if t.user_attrs.get("rejected") else "pruned"] += 1
        elif t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"):
            counts["fail"] += 1
    return counts


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial, or the Pareto front for several objectives (empty if nothing completed)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


@dataclass(frozen=True)
class SearchResult:
    study: str
    storage: str
    objectives: list[str]
    best: list[FrozenTrial]
    trials: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "objectives": self.objectives,
            "best": [{"number": t.number, "values": list(t.values), "params": dict(t.params)} for t in self.best],
            "trials": self.trials,
        }


class _Progress:
    """One line per finished trial on stderr: counts, best so far, elapsed, ETA."""

    def __init__(self, space: SearchSpace, target: int, stream: Any = sys.stderr) -> None:
        self.space, self.target, self.stream = space, target, stream
        self.start = time.perf_counter()
        self.finished_here = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.finished_here += 1
        c = count_trials(study)
        done = sum(c.values())
        elapsed = time.perf_counter() - self.start
        left = max(0, self.target - done)
        eta = elapsed / self.finished_here * left
        state = trial.state.name.lower()
        if trial.user_attrs.get("rejected"):
            state = f"rejected ({trial.user_attrs.get('reason', '')[:60]})"
        values = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.space.objective_names, trial.values or [], strict=False))
        best = best_trials(study)
        best_text = ""
        if best and len(best) == 1:
            best_text = f"best #{best[0].number} {self.space.objective_names[0]}={best[0].values[0]:.4f}"
        elif best:
            best_text = f"pareto front: {len(best)} trials"
        print(
            f"[{done}/{self.target}] trial {trial.number} {state} {values}  |  complete {c['complete']} "
            f"pruned {c['pruned']} rejected {c['rejected']} failed {c['fail']}  |  {best_text}  |  "
            f"elapsed {_clock(elapsed)} ETA {_clock(eta)}",
            file=self.stream,
            flush=True,
        )


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def run_search(
    space: SearchSpace,
    out: Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    timeout_minutes: float | None = None,
    new_study: bool = False,
    allow_import: bool = False,
    progress: bool = True,
) -> SearchResult:
    """Run (or resume) the search until ``trials`` trials have finished; returns the summary."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = absolute_storage(storage) if storage else default_storage(out)
    name = study_name or space.name
    study = open_study(space, storage, name, out, new_study=new_study)
    reap_dead_trials(study)
    target = trials or space.definition.budget.trials
    remaining = target - sum(count_trials(study).values())
    timeout = timeout_minutes or space.definition.budget.timeout_minutes
    if remaining > 0:
        callbacks: list[Any] = [optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE, TrialState.PRUNED))]
        if progress:
            callbacks.append(_Progress(space, target))
        study.optimize(
            Objective(space, out, allow_import=allow_import),
            n_trials=remaining,
            timeout=timeout * 60 if timeout else None,
            callbacks=callbacks,
            catch=(Exception,),
            gc_after_trial=True,
        )
    return SearchResult(name, storage, space.objective_names, best_trials(study), count_trials(study))
