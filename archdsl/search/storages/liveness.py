"""Who runs a trial, and the single-host fallback for storages without Optuna's heartbeat.

Every trial records the worker that runs it (``host``, ``pid``, the process start time, ``device``).
Optuna's journal storage has no heartbeat, so nothing else would notice a worker killed with SIGKILL:
:func:`fail_dead_local_trials` fails the RUNNING trials whose process on *this* host is gone and hands them
to the same retry callback the heartbeat path uses. Workers on other hosts cannot be checked this way;
docs/cluster.md says so. Database storages never use this module's fallback: they have heartbeats.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.record import TrialRecord, TrialWriter
from archdsl.versions import library_versions

__all__ = ["WorkerIdentity", "fail_dead_local_trials", "process_alive", "process_start_time"]


def process_start_time(pid: int) -> int | None:
    """Clock ticks since boot at which ``pid`` started (Linux), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is None:
        return True
    now = process_start_time(pid)
    return now is None or now == started


class WorkerIdentity:
    """This process, as recorded in the user attributes of the trials it runs."""

    def __init__(self, device: str | None = None, worker: str | None = None) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = process_start_time(self.pid)
        self.device = device
        self.worker = worker or f"{self.host}:{self.pid}"

    def record(self, writer: TrialWriter) -> None:
        """Recorded when a trial starts (``device`` again once its spec says where it trains); workers of one
        study may run different installs, so each trial records its worker's library versions."""
        writer.worker(
            host=self.host, pid=self.pid, pid_started=self.started, worker=self.worker, versions=library_versions()
        )
        if self.device is not None:
            writer.device(self.device)


def fail_dead_local_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, retry: Callable[[optuna.Study, FrozenTrial], None]
) -> list[int]:
    """Fail RUNNING trials of dead processes on this host and queue their parameters again (via ``retry``)."""
    host, me = socket.gethostname(), os.getpid()
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.of(t)
        pid = record.pid
        if record.host != host or pid is None or pid == me:
            continue
        if process_alive(pid, record.pid_started):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker on this host got there first
            continue
        retry(study, storage.get_trial(trial_id))
        failed.append(t.number)
    return failed
