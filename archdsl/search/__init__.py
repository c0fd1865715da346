"""Architecture search with Optuna: the loop every way of running a search shares.

A worker (:mod:`.worker`) runs trials (:mod:`.objective`) of one study (:mod:`.study`) until its budget
(:mod:`.budget`) is met; a trial's latency is timed in the runtime the search file names (:mod:`.latency`); a
trial's record in the storage is typed in :mod:`.record`; a trial's error is a training fault or a bug
(:mod:`.faults`); pruning reports epochs (:mod:`.pruning`); samplers and pruners are made from the search file
(:mod:`.sampler`); :mod:`.results` reads a finished study back. The search file lives in :mod:`.space`, the
storages in :mod:`.storages`, what a person reads in :mod:`.report`; the launchers (local processes, Ray, SLURM,
Kubernetes) in :mod:`archdsl.launch`.

Loaded lazily: importing ``archdsl.search`` imports neither Optuna nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_EXPORTS = {
    "archdsl.search.budget": ("Tally", "next_step", "tally"),
    "archdsl.search.faults": ("TrialBug", "TrialFault", "describe", "fault_of"),
    "archdsl.search.latency": ("require_latency",),
    "archdsl.search.objective": ("Objective", "TrialContext"),
    "archdsl.search.pruning": ("PruningCallback",),
    "archdsl.search.record": ("Outcome", "StudyRecord", "TrialRecord", "TrialWriter", "outcome"),
    "archdsl.search.results": (
        "load_study",
        "open_existing",
        "record_study",
        "study_out_dir",
        "trial_checkpoint",
        "trial_spec",
        "winners",
    ),
    "archdsl.search.sampler": ("make_pruner", "make_sampler"),
    "archdsl.search.tracking": ("require_tracking",),
    "archdsl.search.study": ("DEVICE_LOST_EXIT", "SearchResult", "Stopped", "best_trials", "open_study"),
    "archdsl.search.worker": (
        "TrialsFailing",
        "WorkerOptions",
        "require_worker_device",
        "resolve_storage",
        "run_worker",
        "timeout_reason",
    ),
}
__all__ = exported(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from archdsl.search.budget import Tally, next_step, tally
    from archdsl.search.faults import TrialBug, TrialFault, describe, fault_of
    from archdsl.search.latency import require_latency
    from archdsl.search.objective import Objective, TrialContext
    from archdsl.search.pruning import PruningCallback
    from archdsl.search.record import Outcome, StudyRecord, TrialRecord, TrialWriter, outcome
    from archdsl.search.results import (
        load_study,
        open_existing,
        record_study,
        study_out_dir,
        trial_checkpoint,
        trial_spec,
        winners,
    )
    from archdsl.search.sampler import make_pruner, make_sampler
    from archdsl.search.study import DEVICE_LOST_EXIT, SearchResult, Stopped, best_trials, open_study
    from archdsl.search.tracking import require_tracking
    from archdsl.search.worker import (
        TrialsFailing,
        WorkerOptions,
        require_worker_device,
        resolve_storage,
        run_worker,
        timeout_reason,
    )
