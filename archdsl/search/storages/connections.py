"""PostgreSQL's connection budget: ``max_connections`` must hold every worker's pool.

Each worker process holds up to ``POOL_SIZE + MAX_OVERFLOW`` connections (the trial's thread and Optuna's
heartbeat thread use two). A multi-device trial trains under ``ddp_spawn``, and its rank 0, a process of its
own, opens the study again to report epochs and ask the pruner (:mod:`archdsl.search.pruning`): one more
connection per worker while the trial trains. 48 workers against ``max_connections=40`` run no trial at all,
so the budget is checked before workers are started, not discovered by them: by ``search --workers N`` and
``--ray`` against the storage they opened, and by ``archdsl cluster`` when it writes a launch file
(:func:`check_launch_budget`), which connects only to read the budget and creates nothing. Each check prints
one line to stderr::

    connections: 8 workers hold 16 and up to 32 of PostgreSQL's 100 (3 reserved, 7 in use)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage

from archdsl.errors import SearchError, UsageError
from archdsl.search.storages.connect import MAX_OVERFLOW, POOL_SIZE, StorageRef
from archdsl.search.storages.resilient import ResilientStorage, describe_error

__all__ = [
    "ConnectionBudget",
    "check_connection_budget",
    "check_launch_budget",
    "connection_budget",
    "connections",
    "server_url",
]

LAUNCH_CONNECT_SECONDS = 5
"""How long ``archdsl cluster`` waits for the server before it writes the launch file unchecked."""

_SETTINGS = (
    "SELECT name, setting FROM pg_settings "
    "WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
)
_IN_USE = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
"""Background processes (checkpointer, WAL writer, autovacuum) have slots of their own."""


@dataclass(frozen=True)
class ConnectionBudget:
    """What the server allows and what is in use now."""

    max_connections: int
    reserved: int
    """``superuser_reserved_connections`` (and ``reserved_connections``, PostgreSQL 16 and later)."""
    in_use: int
    """Client connections open now, this one included."""

    @property
    def free(self) -> int:
        return self.max_connections - self.reserved - self.in_use


def connections(workers: int, trial_processes: int = 1) -> tuple[int, int]:
    """``(typical, most)`` connections of ``workers`` workers whose trials train in ``trial_processes``
    processes each: two per worker (the trial's thread and the heartbeat), up to its whole pool, and one more
    for a multi-process trial's rank 0."""
    rank0 = 1 if trial_processes > 1 else 0
    return (2 + rank0) * workers, (POOL_SIZE + MAX_OVERFLOW + rank0) * workers


def _read(conn: Any) -> ConnectionBudget:
    import sqlalchemy

    settings = {str(k): int(str(v)) for k, v in conn.execute(sqlalchemy.text(_SETTINGS)).all()}
    in_use = int(str(conn.execute(sqlalchemy.text(_IN_USE)).scalar()))
    reserved = settings.get("superuser_reserved_connections", 0) + settings.get("reserved_connections", 0)
    return ConnectionBudget(settings["max_connections"], reserved, in_use)


def connection_budget(storage: BaseStorage) -> ConnectionBudget | None:
    """Read ``max_connections`` and the connections in use (PostgreSQL only)."""
    if not isinstance(storage, ResilientStorage) or storage.inner.engine.dialect.name != "postgresql":
        return None

    def read() -> ConnectionBudget:
        with storage.inner.engine.connect() as conn:
            return _read(conn)

    return storage.call("reading the connection budget", read)


def _judge(budget: ConnectionBudget, workers: int, trial_processes: int, option: str) -> None:
    """Print the one line; refuse at ``option`` when the free connections cannot hold two per worker."""
    typical, most = connections(workers, trial_processes)
    who = f"{workers} workers" + (" (with their trials' rank 0)" if trial_processes > 1 else "")
    line = (
        f"connections: {who} hold {typical} and up to {most} of PostgreSQL's {budget.max_connections} "
        f"({budget.reserved} reserved, {budget.in_use} in use)"
    )
    if budget.free < typical:
        raise UsageError.option(
            option,
            f"{line}, more than the {budget.free} free: raise max_connections in postgresql.conf (then restart the "
            "server), run fewer workers, or put Optuna's gRPC storage proxy in front of the database",
        )
    if budget.free < most:
        line += f"; {budget.free} are free, so they may wait for connections when busy"
    print(line, file=sys.stderr, flush=True)


def check_connection_budget(
    storage: BaseStorage, workers: int, *, option: str = "--workers", trial_processes: int = 1
) -> None:
    """Refuse to start ``workers`` processes that cannot all connect (at ``option``); say what they hold."""
    budget = connection_budget(storage)
    if budget is not None:
        _judge(budget, workers, trial_processes, option)


def server_url(ref: StorageRef) -> str:
    """The URL SQLAlchemy connects to (:meth:`StorageRef.connect_url`); one it cannot read is refused at
    ``--storage`` (a port that is no number, a bracket left open)."""
    import sqlalchemy.exc as sa_exc

    try:
        return ref.connect_url()
    except (sa_exc.ArgumentError, ValueError) as err:
        raise UsageError.option("--storage", f"cannot read the storage URL {ref.display}: {err}") from None


def check_launch_budget(ref: StorageRef, workers: int, *, option: str, trial_processes: int = 1) -> None:
    """The check of :func:`check_connection_budget` for a launch file written now and run elsewhere: one
    connection that only reads the budget (no Optuna tables, no study). A server this machine cannot reach
    (a login node outside the cluster's network, no password here) is no error: one line says the budget was
    not checked. A URL that cannot be read is an error (``--storage``)."""
    if ref.kind != "postgresql":
        return
    import sqlalchemy
    import sqlalchemy.exc as sa_exc

    url = server_url(ref)
    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": LAUNCH_CONNECT_SECONDS}
        )
    except sa_exc.ArgumentError as err:  # e.g. a query option the driver does not know
        raise UsageError.option("--storage", f"cannot read the storage URL {ref.display}: {err}") from None
    except ImportError:
        raise SearchError.at(
            "", f"no database driver for '{ref.display}': pip install 'archdsl[cluster]' (psycopg for PostgreSQL)"
        ) from None
    try:
        with engine.connect() as conn:
            budget = _read(conn)
    except sa_exc.SQLAlchemyError as err:
        typical, most = connections(workers, trial_processes)
        print(
            f"warning: connections not checked: {ref.display} does not answer from here ({describe_error(err)}); "
            f"{workers} workers will hold {typical} and up to {most} of its max_connections",
            file=sys.stderr,
            flush=True,
        )
        return
    finally:
        engine.dispose()
    _judge(budget, workers, trial_processes, option)
