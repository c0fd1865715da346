"""A study: created once (before any trial runs) or joined, checked to belong to this search; its winners."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from archdsl.errors import SearchError
from archdsl.search.budget import Tally
from archdsl.search.record import StudyRecord, record_budget, rewrite_search, write_study
from archdsl.search.sampler import make_pruner, make_sampler
from archdsl.search.space.identity import differences, identity
from archdsl.search.space.load import SearchSpace
from archdsl.search.storages.connect import StorageRef
from archdsl.versions import library_versions

__all__ = ["SearchResult", "Stopped", "best_trials", "open_study"]


def open_study(
    space: SearchSpace,
    storage: BaseStorage,
    ref: StorageRef,
    study_name: str,
    out: Path,
    *,
    new_study: bool = False,
    trials: int | None = None,
) -> optuna.Study:
    """Create the study once or load it; refuse a study made by another search definition or base spec;
    record the budget of this run (``trials``, default ``budget.trials``), which ``status`` counts against.

    Safe when several workers start together: Optuna's ``load_if_exists`` settles who creates the study,
    and the fingerprint is read back after it is written.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
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
    mine = space.fingerprint()
    stored = StudyRecord.of(study).fingerprint
    if stored is None:
        write_study(study, search=space.to_data(), out=out, versions=library_versions(), fingerprint=mine)
        stored = StudyRecord.of(optuna.load_study(study_name=study_name, storage=storage)).fingerprint
    if stored != mine:
        record = StudyRecord.of(study)
        changed = differences(identity(record.definition_data, record.base_data), space.identity())
        if changed:
            raise SearchError.at(
                "",
                f"study '{study_name}' in {ref.display} was made by a different search definition or base spec "
                f"({'; '.join(changed)}); revert the change, pass --new-study to replace the study, or --study NAME "
                "to start another (budget.trials and budget.timeout_minutes may change: the study goes on)",
                space.doc.locate(()),
            )
        rewrite_search(study, space.to_data(), mine)  # the same search, fingerprinted by an earlier release
    record_budget(study, trials if trials is not None else space.definition.budget.trials)
    return study


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial, or the Pareto front for several objectives (empty if nothing completed)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


DEVICE_LOST_EXIT = 75
"""The exit code of a worker that left after a device fault (``EX_TEMPFAIL``: start it again)."""

Stopped = Literal["budget", "timeout", "interrupted", "failures", "bug", "device", "preempted", "left"]
"""Why a search (or one worker) stopped."""


@dataclass(frozen=True)
class SearchResult:
    """What a search (or one worker) leaves behind; ``to_json`` is the ``search --json`` line."""

    study: str
    storage: str
    """The storage URL with any password hidden."""
    objectives: list[str]
    best: list[FrozenTrial]
    tally: Tally
    stopped: Stopped = "budget"
    """Why this process stopped: ``budget`` (met), ``timeout``, ``interrupted`` (Ctrl-C), ``failures`` (trials
    kept failing), ``bug`` (a trial raised an error that is no training fault), ``device`` (a device fault that
    may poison the process: restart the worker), ``preempted`` (SIGTERM) or ``left`` (the remaining trials run on
    workers this one cannot watch)."""
    reason: str = ""
    """The same, as a sentence for a person (empty when the budget was met)."""

    @property
    def exit_code(self) -> int:
        """0 unless interrupted (130), stopped by failing trials or a bug (1), or by a device fault (75)."""
        return {"interrupted": 130, "failures": 1, "bug": 1, "device": DEVICE_LOST_EXIT}.get(self.stopped, 0)

    @property
    def trials(self) -> dict[str, int]:
        return self.tally.counts()

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "objectives": self.objectives,
            "best": [{"number": t.number, "values": list(t.values), "params": dict(t.params)} for t in self.best],
            "trials": self.trials,
            "stopped": self.stopped,
        }
