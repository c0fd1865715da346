"""PostgreSQL's connection budget: ``max_connections`` must hold every worker's pool.

Each worker process holds up to ``POOL_SIZE + MAX_OVERFLOW`` connections (the trial's thread and Optuna's
heartbeat thread use two). 48 workers against ``max_connections=40`` run no trial at all, so the budget
is checked before workers are started, not discovered by them.
"""

from __future__ import annotations

import sys

from optuna.storages import BaseStorage

from archdsl.errors import UsageError
from archdsl.search.storages.connect import MAX_OVERFLOW, POOL_SIZE
from archdsl.search.storages.resilient import ResilientStorage

__all__ = ["ConnectionBudget", "check_connection_budget", "connection_budget"]


class ConnectionBudget:
    """What the server allows and what is in use now."""

    def __init__(self, max_connections: int, reserved: int, in_use: int) -> None:
        self.max_connections, self.reserved, self.in_use = max_connections, reserved, in_use

    @property
    def free(self) -> int:
        return self.max_connections - self.reserved - self.in_use


def connection_budget(storage: BaseStorage) -> ConnectionBudget | None:
    """Read ``max_connections`` and the connections in use (PostgreSQL only)."""
    if not isinstance(storage, ResilientStorage) or storage.inner.engine.dialect.name != "postgresql":
        return None
    import sqlalchemy

    def read() -> ConnectionBudget:
        with storage.inner.engine.connect() as conn:
            value = conn.execute(sqlalchemy.text("SHOW max_connections")).scalar()
            reserved = conn.execute(sqlalchemy.text("SHOW superuser_reserved_connections")).scalar()
            in_use = conn.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity")).scalar()
        return ConnectionBudget(int(str(value)), int(str(reserved)), int(str(in_use)))

    return storage.call("reading the connection budget", read)


def check_connection_budget(storage: BaseStorage, workers: int) -> None:
    """Refuse to start ``workers`` processes that cannot all connect; warn when their pools could not grow."""
    budget = connection_budget(storage)
    if budget is None:
        return
    typical, most = 2 * workers, (POOL_SIZE + MAX_OVERFLOW) * workers
    text = (
        f"PostgreSQL allows max_connections={budget.max_connections} ({budget.reserved} reserved for "
        f"superusers, {budget.in_use} in use, {budget.free} free); {workers} workers hold {typical} "
        f"connections and up to {most}"
    )
    if budget.free < typical:
        raise UsageError.option(
            "--workers",
            f"{text}: raise max_connections in postgresql.conf (then restart the server), run fewer workers, "
            "or put Optuna's gRPC storage proxy in front of the database",
        )
    if budget.free < most:
        print(f"warning: {text}; they may wait for connections when busy", file=sys.stderr)
