"""An Optuna RDB storage that rides out a lost database connection.

Every storage call is retried with exponential backoff while the failure is a lost, refused or busy
connection, for at most ``window`` seconds from the first failure; after that the call raises
:class:`StorageLostError`, one line naming the storage and what was being done, and the worker exits 1.
Optuna's own heartbeat and stale-trial machinery is delegated to unchanged (``fail_stale_trials`` and the
heartbeat thread see a :class:`~optuna.storages._heartbeat.BaseHeartbeat`).

Retrying a write whose commit reached the server before the connection dropped could apply it twice;
the one write where that matters, finishing a trial, is made idempotent: a retry that finds the trial
already in the requested state succeeds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from archdsl.errors import ArchDSLError, Problem, chain

__all__ = ["ResilientStorage", "StorageLostError", "describe_error", "is_transient"]

T = TypeVar("T")

_PERMANENT = (
    "does not exist",
    "authentication failed",
    "pg_hba.conf",
    "access denied",
    "unknown database",
    "no such table",
    "unable to open database file",
    "password",
)
"""Operational errors that waiting does not cure (a wrong database name, user or password)."""


class StorageLostError(ArchDSLError):
    """The study storage could not be reached for longer than ``workers.reconnect_seconds`` (exit 1)."""

    exit_code = 1

    def __init__(self, where: str, doing: str, window: float, reason: str) -> None:
        self.where, self.doing, self.window, self.reason = where, doing, window, reason
        super().__init__(
            Problem(
                "workers.reconnect_seconds",
                f"lost the connection to the study storage {where} while {doing}, and it did not come back "
                f"within {window:g} s ({reason}); running trials are failed as stale and retried when the "
                "search is started again",
            )
        )


def is_transient(exc: BaseException) -> bool:
    """A lost, refused or busy connection somewhere in ``exc``'s chain (Optuna wraps them, sometimes in
    ``StorageInternalError``, sometimes behind an ``UnboundLocalError`` raised while handling them)."""
    import sqlalchemy.exc as sa_exc

    for current in chain(exc):
        if isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
            text = str(getattr(current, "orig", current)).lower()
            return not any(p in text for p in _PERMANENT)
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
    return False


def describe_error(exc: BaseException) -> str:
    """The innermost database message of ``exc``, on one line."""
    for current in chain(exc):
        orig = getattr(current, "orig", None)
        if orig is not None:
            return " ".join(str(orig).split())[:200]
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class ResilientStorage(BaseStorage, BaseHeartbeat):
    """Delegates to an :class:`~optuna.storages.RDBStorage`, retrying calls that lose the connection."""

    def __init__(self, inner: RDBStorage, *, window: float, where: str) -> None:
        self.inner = inner
        self.window = window
        self.where = where
        self.lost: StorageLostError | None = None
        """Set when some call (possibly on the heartbeat thread) gave up: the worker stops at the next check."""
        self._lock = threading.Lock()
        self._reported = False

    def __getstate__(self) -> dict[str, Any]:  # picklable for DDP-spawned ranks (RDBStorage drops its engine)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def call(
        self, doing: str, fn: Callable[[], T], *, on_retry: Callable[[BaseException], T | None] | None = None
    ) -> T:
        """``fn()``, retried while the connection is lost, for at most ``window`` s from the first failure;
        ``on_retry(exc)`` may settle a retried call whose first attempt took effect after all."""
        if self.lost is not None:  # gave up already (perhaps on the heartbeat thread): fail fast
            raise self.lost
        deadline: float | None = None
        delay = 0.1
        attempt = 0
        while True:
            try:
                result = fn()
            except Exception as exc:
                if attempt and on_retry is not None:
                    settled = on_retry(exc)
                    if settled is not None:
                        return settled
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.window
                if now >= deadline:
                    lost = StorageLostError(self.where, doing, self.window, describe_error(exc))
                    self.lost = self.lost or lost
                    raise lost from None
                self._say_retrying(doing, exc)
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 5.0)
                attempt += 1
                self.inner.engine.dispose()  # drop pooled connections to the old server process
            else:
                if attempt:
                    self._recovered(doing, time.monotonic() - (deadline or 0.0) + self.window)
                return result

    def _say_retrying(self, doing: str, exc: BaseException) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        print(
            f"storage {self.where}: connection lost while {doing} ({describe_error(exc)}); "
            f"retrying for up to {self.window:g} s",
            file=sys.stderr,
            flush=True,
        )

    def _recovered(self, doing: str, seconds: float) -> None:
        with self._lock:
            if not self._reported:
                return
            self._reported = False
        print(f"storage {self.where}: reconnected after {seconds:.1f} s ({doing})", file=sys.stderr, flush=True)

    # --- studies -------------------------------------------------------------------------------------
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self.call("creating the study", lambda: self.inner.create_new_study(directions, study_name))

    def delete_study(self, study_id: int) -> None:
        self.call("deleting the study", lambda: self.inner.delete_study(study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.call("writing the study", lambda: self.inner.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.call("writing the study", lambda: self.inner.set_study_system_attr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.call("reading the study", lambda: self.inner.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.call("reading the study", lambda: self.inner.get_study_name_from_id(study_id))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.call("reading the study", lambda: self.inner.get_study_directions(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.call("reading the study", lambda: self.inner.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.call("reading the study", lambda: self.inner.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.call("listing the studies", self.inner.get_all_studies)

    # --- trials --------------------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self.call("creating a trial", lambda: self.inner.create_new_trial(study_id, template_trial))

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self.call(
            f"recording parameter {param_name}",
            lambda: self.inner.set_trial_param(trial_id, param_name, param_value_internal, distribution),
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.call(
            "reading a trial", lambda: self.inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        )

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self.call("reading a trial", lambda: self.inner.get_trial_number_from_id(trial_id))

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self.call("reading a trial", lambda: self.inner.get_trial_param(trial_id, param_name))

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        def settled(exc: BaseException) -> bool | None:
            # An earlier attempt may have committed before its connection dropped.
            if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
                return True if self.inner.get_trial(trial_id).state == state else None
            return None

        return self.call(
            f"setting a trial {state.name}",
            lambda: self.inner.set_trial_state_values(trial_id, state, values),
            on_retry=settled,
        )

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.call(
            "reporting an epoch",
            lambda: self.inner.set_trial_intermediate_value(trial_id, step, intermediate_value),
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.call(f"recording {key}", lambda: self.inner.set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.call(f"recording {key}", lambda: self.inner.set_trial_system_attr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.call("reading a trial", lambda: self.inner.get_trial(trial_id))

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self.call("reading the trials", lambda: self.inner.get_all_trials(study_id, deepcopy, states))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self.call("reading the best trial", lambda: self.inner.get_best_trial(study_id))

    def remove_session(self) -> None:
        self.inner.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self.inner.check_trial_is_updatable(trial_id, trial_state)

    # --- heartbeat (Optuna's machinery, delegated) ---------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        # On Optuna's heartbeat thread: never let an exception end the thread with a traceback; the
        # failure is kept in ``self.lost`` and the trial's own thread stops at its next check.
        import sqlalchemy.exc as sa_exc

        for _ in range(3):
            try:
                self.call("recording a heartbeat", lambda: self.inner.record_heartbeat(trial_id))
                return
            except StorageLostError:
                return
            except sa_exc.IntegrityError:  # another process inserted the row first: update it next time round
                continue
            except Exception as exc:
                print(
                    f"storage {self.where}: heartbeat of trial id {trial_id} not recorded: {describe_error(exc)}",
                    file=sys.stderr,
                    flush=True,
                )
                return

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.call("looking for stale trials", lambda: self.inner._get_stale_trial_ids(study_id))

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.inner.get_heartbeat_stale_trial_callback()

    @property
    def grace_period(self) -> int | None:
        return self.inner.grace_period
