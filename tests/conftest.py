"""Shared fixtures: a private PostgreSQL database per test on the real server (never a mock).

The server is ``ARCHDSL_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``). Where it
does not answer, tests that need it are skipped with the reason, unless ``ARCHDSL_REQUIRE_SERVICES=1``
(which ``.ci/run`` sets): then they fail, so CI never skips them silently.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import pytest

POSTGRES = os.environ.get("ARCHDSL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: the N workers share the cores (torch would give each one all of them), and so do the archdsl
    # processes the tests start, which inherit this. Set before torch is imported anywhere in the worker.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))


if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Started in the background of a non-interactive shell (`bash .ci/run &`, a CI runner), the tests inherit
    # SIGINT ignored, and so would every archdsl process they start: a Ctrl-C sent while one starts, before it
    # installs handlers of its own, would be ignored by the kernel (seen as "a lost Ctrl-C" in the chaos test).
    # Python's handler here; the processes started from here get the default action (exec resets handlers).
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _admin_engine():  # type: ignore[no-untyped-def]
    import sqlalchemy

    url = sqlalchemy.engine.make_url(POSTGRES).set(drivername="postgresql+psycopg")
    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh database, dropped after the test."""
    import sqlalchemy

    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # no server, or no driver
        if os.environ.get("ARCHDSL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"ARCHDSL_REQUIRE_SERVICES=1 but PostgreSQL at {POSTGRES} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES} ({type(exc).__name__}); set ARCHDSL_TEST_POSTGRES")
    name = f"archdsl_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    base = sqlalchemy.engine.make_url(POSTGRES)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            conn.execute(sqlalchemy.text(terminate), {"n": name})
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()


MYSQL = os.environ.get("ARCHDSL_TEST_MYSQL", "mysql://root@127.0.0.1:3306/mysql")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MySQL/MariaDB database, dropped after the test (skipped without a server: only PostgreSQL is a
    service every machine runs)."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(MYSQL).set(drivername="mysql+pymysql")
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        pytest.skip(f"no MySQL server answers at {MYSQL} ({type(exc).__name__}); set ARCHDSL_TEST_MYSQL")
    name = f"archdsl_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE `{name}`"))
    try:
        yield sqlalchemy.engine.make_url(MYSQL).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()
