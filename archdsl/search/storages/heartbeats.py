"""Reading Optuna's heartbeats, and failing stale trials before a study is declared finished.

Optuna records one heartbeat row per running trial (table ``trial_heartbeats`` of its RDB schema) and
fails a trial whose row is older than the grace period (``optuna.storages.fail_stale_trials``). Its
public API has no way to *read* a heartbeat, which ``archdsl status`` shows, so :func:`last_heartbeats`
reads the table, the one place archdsl touches Optuna's schema; it returns ``None`` where that is not
possible and callers show no heartbeat.

Optuna's rule skips a RUNNING trial that has no heartbeat row at all: one whose worker died between
creating it and starting its heartbeat thread. Such a trial would stay RUNNING forever, and workers waiting
for the last trials would wait forever. :func:`fail_stale` therefore records one heartbeat for such a
trial (Optuna's own ``record_heartbeat``); if the trial is alive its thread keeps the row fresh, and if not,
Optuna's rule fails it after the grace period like any other.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.storages.liveness import fail_dead_local_trials
from archdsl.search.storages.resilient import ResilientStorage

__all__ = ["fail_stale", "last_heartbeats"]


def last_heartbeats(storage: BaseStorage, study_name: str) -> tuple[dt.datetime, dict[int, dt.datetime]] | None:
    """``(database now, {trial number: last heartbeat})`` for the study's running trials, or ``None``."""
    if not isinstance(storage, ResilientStorage):
        return None
    import sqlalchemy

    query = sqlalchemy.text(
        "SELECT t.number, h.heartbeat FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND t.state = 'RUNNING'"
    )

    def read() -> tuple[dt.datetime, dict[int, dt.datetime]]:
        with storage.inner.engine.connect() as conn:
            now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
            rows = conn.execute(query, {"name": study_name}).all()
        return _naive(now), {int(n): _naive(h) for n, h in rows}

    try:
        return storage.call("reading heartbeats", read)
    except Exception:  # another schema version: no heartbeat to show, nothing else depends on it
        return None


def _naive(value: object) -> dt.datetime:
    if isinstance(value, str):  # SQLite returns text
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=None)


def fail_stale(study: optuna.Study, storage: BaseStorage, retry: Callable[[optuna.Study, FrozenTrial], None]) -> None:
    """Fail (and queue again) the trials of dead workers: Optuna's heartbeat rule, or the single-host
    fallback for storages without a heartbeat."""
    if not is_heartbeat_enabled(storage):
        fail_dead_local_trials(study, storage, retry)
        return
    assert isinstance(storage, BaseHeartbeat)
    beats = last_heartbeats(storage, study.study_name)
    if beats is not None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        orphans = [t for t in running if t.number not in beats[1]]
        if orphans:
            study_id = storage.get_study_id_from_name(study.study_name)
            for t in orphans:
                storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, t.number))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
