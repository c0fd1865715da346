"""Where studies live: the storage URL and its engine (:mod:`.connect`), the storage that survives a lost
connection (:mod:`.resilient`), the server's connection budget (:mod:`.connections`), Optuna's heartbeats
(:mod:`.heartbeats`), liveness of workers on storages without them (:mod:`.liveness`) and the retry of lost
trials (:mod:`.retry`). Every import of a private Optuna module and every SQL statement on Optuna's tables
lives in this package and nowhere else (``tests/test_layout.py`` checks it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_EXPORTS = {
    "archdsl.search.storages.connect": (
        "MAX_OVERFLOW",
        "PASSWORD_ENV",
        "POOL_SIZE",
        "StorageRef",
        "StudyRef",
        "default_storage_url",
        "open_storage",
        "parse_storage_url",
    ),
    "archdsl.search.storages.connections": ("check_connection_budget", "check_launch_budget", "server_url"),
    "archdsl.search.storages.heartbeats": ("fail_stale", "last_heartbeats"),
    "archdsl.search.storages.liveness": ("WorkerIdentity", "fail_dead_local_trials"),
    "archdsl.search.storages.resilient": ("ResilientStorage", "StorageLostError", "describe_error", "is_transient"),
    "archdsl.search.storages.retry": ("Retry",),
}
__all__ = exported(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from archdsl.search.storages.connect import (
        MAX_OVERFLOW,
        PASSWORD_ENV,
        POOL_SIZE,
        StorageRef,
        StudyRef,
        default_storage_url,
        open_storage,
        parse_storage_url,
    )
    from archdsl.search.storages.connections import check_connection_budget, check_launch_budget, server_url
    from archdsl.search.storages.heartbeats import fail_stale, last_heartbeats
    from archdsl.search.storages.liveness import WorkerIdentity, fail_dead_local_trials
    from archdsl.search.storages.resilient import ResilientStorage, StorageLostError, describe_error, is_transient
    from archdsl.search.storages.retry import Retry
