"""Storage URLs, the budget rule, per-trial seeds and the journal fallback (fast, no server needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archdsl.errors import UsageError
from archdsl.search.budget import admits, next_step, tally
from archdsl.search.record import TrialWriter
from archdsl.search.sampler import TrialSeeded, trial_seed
from archdsl.search.space.definition import WorkersSpec
from archdsl.search.storages.connect import PASSWORD_ENV, open_storage, parse_storage_url, redact
from archdsl.search.storages.liveness import WorkerIdentity, fail_dead_local_trials
from archdsl.search.storages.resilient import is_transient
from archdsl.search.storages.retry import Retry


def test_storage_urls_are_parsed_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_storage_url("sqlite:///rel/study.db").url == f"sqlite:///{tmp_path}/rel/study.db"
    journal = parse_storage_url("journal:runs/j.log")
    assert journal.kind == "journal" and journal.path == str(tmp_path / "runs/j.log") and not journal.has_heartbeat
    pg = parse_storage_url("postgres://bob:pw@db:5433/opt")
    assert pg.kind == "postgresql" and pg.has_heartbeat and pg.host == "db:5433/opt"
    assert pg.display == "postgresql://bob:***@db:5433/opt"
    assert pg.connect_url() == "postgresql+psycopg://bob:pw@db:5433/opt"
    assert pg.split_password() == ("postgresql://bob@db:5433/opt", "pw")
    assert parse_storage_url("mysql://root@127.0.0.1/test").connect_url() == "mysql+pymysql://root@127.0.0.1/test"
    with pytest.raises(UsageError, match=r"^--storage: a storage URL is sqlite:///PATH.*got 'redis://:\*\*\*@host'$"):
        parse_storage_url("redis://:secret@host")
    assert "secret" not in redact("redis://:secret@host")


def test_the_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    ref = parse_storage_url("postgresql://bob@db/opt")
    assert ref.connect_url() == "postgresql+psycopg://bob:from-env@db/opt"
    assert ref.display == "postgresql://bob@db/opt"  # nothing to hide: the URL never held it
    assert ref.split_password() == ("postgresql://bob@db/opt", "from-env")
    assert parse_storage_url("postgresql://bob:own@db/opt").connect_url() == "postgresql+psycopg://bob:own@db/opt"


def test_only_connection_failures_are_retried() -> None:
    import sqlalchemy
    import sqlalchemy.exc as sa_exc

    def failure(url: str) -> BaseException:
        try:
            sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2}).connect()
        except sa_exc.SQLAlchemyError as err:
            return err
        raise AssertionError("connected")

    refused = failure("postgresql+psycopg://postgres@127.0.0.1:1/x")  # nothing listens on port 1
    assert is_transient(refused)
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = refused
    assert is_transient(wrapped)
    try:
        raise UnboundLocalError("updated_state")  # what Optuna raises while handling the loss
    except UnboundLocalError as err:
        err.__context__ = wrapped
        assert is_transient(err)
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(sa_exc.OperationalError("SELECT 1", {}, Exception('database "nope" does not exist')))


def test_an_unreachable_database_is_one_located_line(tmp_path: Path) -> None:
    search = tmp_path / "s.yaml"
    (tmp_path / "base.yaml").write_text((Path(__file__).parent.parent / "specs/digits_search_base.yaml").read_text())
    search.write_text(
        "base: base.yaml\nworkers: {reconnect_seconds: 1}\nparams: {train.optimizer.lr: {float: [1.0e-3, 2.0e-3]}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "archdsl", "worker", str(search), "--storage", "postgresql://u:pw@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(
        "workers.reconnect_seconds: lost the connection to the study storage postgresql://u:***@127.0.0.1:1/db "
        "while opening the storage"
    )
    assert "pw@" not in proc.stderr


def _trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    system = {"retry_history": attrs.pop("history")} if "history" in attrs else {}
    t = create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs=attrs,
        system_attrs=system,
    )
    t.number = number
    return t


def test_the_budget_rule_lets_earlier_slots_run_and_refuses_the_rest() -> None:
    done = [_trial(i, TrialState.COMPLETE) for i in range(3)]
    racing = [_trial(3, TrialState.RUNNING), _trial(4, TrialState.RUNNING)]
    trials = done + racing
    assert admits(trials, racing[0], budget=4) and not admits(trials, racing[1], budget=4)
    # a retry keeps the slot of the trial it replaces: it runs ahead of later fresh trials
    lost = _trial(3, TrialState.FAIL)
    retry = _trial(5, TrialState.RUNNING, history=[3])
    trials = [*done, lost, racing[1], retry]
    assert admits(trials, retry, budget=4) and not admits(trials, racing[1], budget=4)
    counts = tally(
        [
            *done,
            lost,
            _trial(4, TrialState.FAIL, over_budget=True),
            retry,
            _trial(6, TrialState.PRUNED, rejected=True),
            _trial(7, TrialState.FAIL, error="boom"),
        ]
    )
    assert (counts.complete, counts.rejected, counts.retried, counts.over_budget, counts.fail, counts.running) == (
        3,
        1,
        1,
        1,
        1,
        1,
    )
    assert counts.counts() == {"complete": 3, "pruned": 0, "rejected": 1, "fail": 1}
    assert next_step(counts, budget=4) == "done"
    assert next_step(counts, budget=5) == "wait"  # 4 finished + 1 running: the last slot is held
    assert next_step(counts, budget=6) == "run"


def test_trial_seeds_give_distinct_reproducible_draws() -> None:
    assert trial_seed(0, 1) != trial_seed(0, 2) and trial_seed(0, 1) == trial_seed(0, 1)
    assert trial_seed(0, 1) != trial_seed(1, 1)

    def draws(n: int) -> list[float]:
        study = optuna.create_study(sampler=TrialSeeded(lambda s: optuna.samplers.RandomSampler(seed=s), 7))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
        return [t.params["x"] for t in study.trials]

    assert len(set(draws(6))) == 6
    assert draws(3) == draws(6)[:3]  # a resumed search continues the draws of an uninterrupted one


def test_the_journal_fallback_fails_and_retries_trials_of_dead_local_processes(tmp_path: Path) -> None:
    ref = parse_storage_url(f"journal:{tmp_path / 'j.log'}")
    storage = open_storage(ref, WorkersSpec())
    study = optuna.create_study(study_name="j", storage=storage)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = WorkerIdentity("cpu")
    for pid, started in ((dead.pid, None), (os.getpid(), me.started)):
        trial = study.ask({"x": FloatDistribution(0, 1)})
        TrialWriter(trial).worker(host=me.host, pid=pid, pid_started=started, worker=me.worker, versions={})
    assert fail_dead_local_trials(study, storage, Retry(1)) == [0]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert study.trials[2].params == study.trials[0].params and study.trials[2].user_attrs == {}
    assert json.dumps(study.trials[2].system_attrs["retry_history"]) == "[0]"
    assert fail_dead_local_trials(study, storage, Retry(1)) == []  # once only
