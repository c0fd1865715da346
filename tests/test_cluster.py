"""Search on a cluster, on the real PostgreSQL server (and the embedded SQLite file): many workers on one
study, a worker killed mid-trial, preemption, a cut database connection, no repeated proposals, no password
in anything archdsl writes. Nothing is mocked: workers are real ``archdsl`` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.budget import retry_history
from archdsl.search.record import TrialRecord
from tests.test_search import BASE as SEARCH_TEST_BASE

# the tiny 8-px base of the search tests, with the epochs as a parameter of each test
BASE = SEARCH_TEST_BASE.replace("epochs: 2, batch_size: 128", "epochs: EPOCHS, batch_size: 64")
assert "EPOCHS" in BASE

SEARCH = """\
base: base.yaml
budget: {trials: TRIALS}
sampler: {name: tpe, seed: 0, startup_trials: 4}
pruner: {name: none}
workers: {heartbeat_seconds: 1, grace_seconds: 3, max_retry: 1, reconnect_seconds: RECONNECT}
params:
  conv_stages: {int: [0, 1]}
  stages.*.blocks.*.mixer.num_heads: {choice: [2, 4]}
  stem.channels: {choice: [8, 16]}
  train.optimizer.lr: {float: [1.0e-3, 5.0e-3], log: true}
"""


PRESCREEN = "prescreen: {proxy: naswot, pool: 6, keep: 2}\n"
"""A prescreened variant of SEARCH (``write_search(..., prescreen=PRESCREEN)``)."""


def write_search(tmp: Path, trials: int = 16, epochs: int = 2, reconnect: float = 30, prescreen: str = "") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "base.yaml").write_text(BASE.replace("EPOCHS", str(epochs)))
    path = tmp / "search.yaml"
    path.write_text(prescreen + SEARCH.replace("TRIALS", str(trials)).replace("RECONNECT", str(reconnect)))
    return path


def archdsl(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "archdsl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        **kwargs,
    )


def worker(
    search: Path, storage: str, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return archdsl(
        "worker", str(search), "--storage", storage, "--out", str(out), "--threads", "1", "--json", *extra, env=env
    )


def wait_for(
    study: Callable[[], optuna.Study],
    pick: Callable[[list[FrozenTrial]], FrozenTrial | None],
    procs: list[subprocess.Popen[str]],
    timeout: float = 240,
) -> FrozenTrial:
    """Poll the study until ``pick`` finds a trial (the workers must stay up meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"a worker ended early ({p.returncode}): {p.communicate()[1][-3000:]}")
        try:
            found = pick(study().get_trials(deepcopy=False))
        except Exception:  # the study is not created yet
            continue
        if found is not None:
            return found
    pytest.fail("the trial to interrupt never came")


def mid_training(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """A trial past its first epoch, still running, on a worker we can signal."""
    running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("epoch", 0) >= 1]
    return running[0] if running else None


def finish(procs: list[subprocess.Popen[str]], timeout: float = 400) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def assert_study_ends_exactly(study: optuna.Study, budget: int, killed: FrozenTrial) -> None:
    trials = study.get_trials(deepcopy=False)
    screened = [t for t in trials if TrialRecord.of(t).screened]
    trials = [t for t in trials if not TrialRecord.of(t).screened]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == budget, [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if screened:  # prescreened: every trained trial (or its retry) trains a distinct screened proposal
        assert all(t.state == TrialState.FAIL for t in screened)
        sources = [TrialRecord.of(t).promoted_from for t in finished]
        assert None not in sources and len(set(sources)) == len(sources), [
            (t.number, t.state.name, retry_history(t), sorted(t.user_attrs), t.system_attrs) for t in finished
        ]
        proposals = {t.number: t.params for t in screened}
        assert all(t.params == proposals[s] for t, s in zip(finished, sources, strict=True))  # type: ignore[index]
    assert study.trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if killed.number in retry_history(t)]
    assert len(retries) == 1, [(t.number, t.state.name, retry_history(t)) for t in retries]
    assert retries[0].state == TrialState.COMPLETE and retries[0].params == killed.params
    # no two finished trials propose the same architecture (the retry replaces the killed trial, not a finished one)
    proposals = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(proposals)) == len(proposals)


@pytest.mark.slow
@pytest.mark.parametrize("prescreen", ["", PRESCREEN], ids=["sampled", "prescreened"])
def test_four_workers_share_a_postgres_study_and_survive_a_killed_worker(
    tmp_path: Path, postgres_url: str, prescreen: str
) -> None:
    search = write_search(tmp_path, trials=10, epochs=3, prescreen=prescreen)
    out = tmp_path / "out"
    procs = [worker(search, postgres_url, out) for _ in range(4)]
    load = lambda: optuna.load_study(study_name="search", storage=postgres_url)  # noqa: E731
    victim = wait_for(load, mid_training, procs)
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    results = finish(procs)
    codes = sorted(code for code, _, _ in results)
    assert codes == [-signal.SIGKILL, 0, 0, 0], [r[2][-2000:] for r in results]
    assert_study_ends_exactly(load(), 10, victim)
    for code, stdout, _ in results:
        if code == 0:
            summary = json.loads(stdout.strip().splitlines()[-1])
            counts = {k: v for k, v in summary["trials"].items() if k != "screened"}  # screened count apart
            assert summary["stopped"] == "budget" and sum(counts.values()) == 10
    # each trial recorded its worker and its absolute checkpoint
    done = load().get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert {t.user_attrs["host"] for t in done} == {os.uname().nodename}
    checkpoints = [Path(t.user_attrs["checkpoint"]) for t in done]
    assert all(c.is_absolute() and c.is_file() for c in checkpoints)


@pytest.mark.slow
def test_search_with_two_local_workers_on_sqlite_survives_a_killed_worker(tmp_path: Path) -> None:
    search = write_search(tmp_path, trials=8, epochs=3)
    out = tmp_path / "out"
    proc = archdsl("search", str(search), "--out", str(out), "--workers", "2", "--json")
    db = f"sqlite:///{out / 'study.db'}"
    load = lambda: optuna.load_study(study_name="search", storage=db)  # noqa: E731
    victim = wait_for(load, mid_training, [proc])
    workers = {t.user_attrs.get("worker") for t in load().get_trials(deepcopy=False) if "worker" in t.user_attrs}
    assert workers <= {"w0", "w1"}
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["storage"] == db and summary["stopped"] == "budget"
    assert_study_ends_exactly(load(), 8, victim)
    # one merged display: the progress lines of both workers' trials in the parent's stderr
    lines = [line for line in stderr.splitlines() if line.startswith("[")]
    assert any(" on w0 " in line for line in lines) and any(" on w1 " in line for line in lines)
    assert (out / "logs" / "worker-0.log").is_file() and (out / "logs" / "worker-1.log").is_file()


def test_local_workers_whose_trials_keep_failing_stop_the_search_with_their_reason(tmp_path: Path) -> None:
    """Each worker process stops on its failure budget; the parent says why, from the worker's own stop line
    in its log (not the log's last line, which is the worker's summary)."""
    search = write_search(tmp_path, trials=8, epochs=1)
    base = (tmp_path / "base.yaml").read_text()
    data = f"data: {{name: image_folder, root: {tmp_path / 'none'}}}"
    (tmp_path / "base.yaml").write_text(
        base.replace("channels: 1,", "channels: 3,").replace("data: {name: digits, augment: false}", data)
    )
    search.write_text(
        search.read_text().replace("reconnect_seconds: 30", "reconnect_seconds: 30, max_failures_in_a_row: 2")
    )
    out = tmp_path / "out"
    proc = archdsl("search", str(search), "--out", str(out), "--workers", "2", "--json")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["stopped"] == "failures"
    (reason,) = [line for line in stderr.splitlines() if line.startswith("search stopped (failures): ")]
    for i in (0, 1):
        assert (
            f"worker {i} exited with code 1: search stopped (failures): 2 trials in a row failed on this worker"
            in reason
        ), reason
    assert "train.data.root: " in reason


@pytest.mark.slow
def test_sigterm_preempts_a_worker_which_hands_its_trial_back(tmp_path: Path, postgres_url: str) -> None:
    search = write_search(tmp_path, trials=3, epochs=6)
    out = tmp_path / "out"
    first = worker(search, postgres_url, out)
    load = lambda: optuna.load_study(study_name="search", storage=postgres_url)  # noqa: E731
    victim = wait_for(load, mid_training, [first])
    sent = time.monotonic()
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr[-3000:]
    assert time.monotonic() - sent < 30
    assert json.loads(stdout.strip().splitlines()[-1])["stopped"] == "preempted"
    study = load()
    t = study.trials[victim.number]
    assert t.state == TrialState.FAIL and t.user_attrs["reason"] == "preempted"
    queued = [q for q in study.trials if retry_history(q) == [victim.number]]
    assert len(queued) == 1 and queued[0].state == TrialState.WAITING and queued[0].params == victim.params
    assert not [q for q in study.trials if q.state == TrialState.RUNNING]
    # a worker that joins later runs the handed-back trial first, then the rest of the budget
    ((code, stdout, stderr),) = finish([worker(search, postgres_url, out)])
    assert code == 0, stderr[-3000:]
    study = load()
    assert study.trials[queued[0].number].state == TrialState.COMPLETE
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


@pytest.mark.slow
def test_workers_ride_out_a_cut_database_connection(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    from tests.tcp_proxy import TcpProxy

    real = make_url(postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        search = write_search(tmp_path, trials=6, epochs=4, reconnect=30)
        out = tmp_path / "out"
        procs = [worker(search, via_proxy, out) for _ in range(2)]
        load = lambda: optuna.load_study(study_name="search", storage=postgres_url)  # noqa: E731
        wait_for(load, mid_training, procs)
        proxy.cut()
        time.sleep(3.0)
        proxy.restore()
        results = finish(procs)
        assert [code for code, _, _ in results] == [0, 0], [r[2][-3000:] for r in results]
        assert any("connection lost" in err and "reconnected" in err for _, _, err in results)
        study = load()
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
        assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL))

        # a cut longer than workers.reconnect_seconds: one line naming the storage, exit 1; a rerun completes
        search = write_search(tmp_path / "long", trials=4, epochs=4, reconnect=2)
        out = tmp_path / "long" / "out"
        proc = worker(search, via_proxy, out, "--study", "long")
        load = lambda: optuna.load_study(study_name="long", storage=postgres_url)  # noqa: E731
        wait_for(load, mid_training, [proc])
        proxy.cut()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"workers.reconnect_seconds: lost the connection to the study storage {via_proxy}")
        assert "within 2 s" in last and "Traceback" not in stderr and "sqlalchemy" not in stderr.lower()
        proxy.restore()
        ((code, _, stderr),) = finish([worker(search, via_proxy, out, "--study", "long")])
        assert code == 0, stderr[-3000:]
        assert len(load().get_trials(states=(TrialState.COMPLETE,))) == 4
        assert not load().get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    finally:
        proxy.close()


@pytest.mark.slow
@pytest.mark.parametrize("prescreen", ["", PRESCREEN], ids=["sampled", "prescreened"])
def test_resumed_searches_never_repeat_a_proposal(tmp_path: Path, prescreen: str) -> None:
    search = write_search(tmp_path, trials=6, epochs=1, prescreen=prescreen)
    out = tmp_path / "out"
    for n in (2, 4, 6):
        proc = archdsl("search", str(search), "--out", str(out), "--trials", str(n), "--json")
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    finished = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(finished) == 6
    proposals = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(proposals)) == 6


@pytest.mark.slow
def test_no_password_in_anything_archdsl_writes(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    secret = "Zq9-not-a-real-password-7x"  # the test server trusts local connections, so any password works
    with_password = make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)
    search = write_search(tmp_path, trials=2, epochs=1)
    out = tmp_path / "out"
    outputs = []
    proc = archdsl("search", str(search), "--out", str(out), "--storage", with_password, "--workers", "2", "--json")
    outputs += proc.communicate(timeout=300)
    assert proc.returncode == 0, outputs[-1][-3000:]
    summary = json.loads(outputs[0].strip().splitlines()[-1])
    assert summary["storage"] == make_url(with_password).render_as_string(hide_password=True)
    readers = (
        ["status", str(out), "--json"],
        ["best", str(out), "--json"],
        ["report", str(out), "--out", str(tmp_path / "r")],
        [
            "cluster",
            "slurm",
            str(search),
            "--storage",
            with_password,
            "--nodes",
            "1",
            "--gpus-per-node",
            "1",
            "--dir",
            str(out),
        ],
    )
    for args in readers:
        proc = archdsl(*args, env={"ARCHDSL_STORAGE_PASSWORD": secret})
        outputs += proc.communicate(timeout=120)
        assert proc.returncode == 0, outputs[-1][-3000:]
    for args in (
        ["worker", str(search), "--storage", with_password, "--out", str(out), "--trials", "3"],
        ["worker", str(search), "--storage", postgres_url, "--out", str(out), "--trials", "4"],
    ):
        proc = archdsl(*args, env={"ARCHDSL_STORAGE_PASSWORD": secret})
        outputs += proc.communicate(timeout=300)
        assert proc.returncode == 0, outputs[-1][-3000:]
    written = [p for p in [*out.rglob("*"), *(tmp_path / "r").rglob("*")] if p.is_file()]
    assert written
    leaks = [str(p) for p in written if secret.encode() in p.read_bytes()]
    leaks += [text[:200] for text in outputs if secret in text]
    assert leaks == []
    study = optuna.load_study(study_name="search", storage=postgres_url)
    stored = json.dumps([study.user_attrs, [t.user_attrs for t in study.trials]])
    assert secret not in stored


@pytest.mark.slow
def test_status_shows_the_running_workers_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    search = write_search(tmp_path, trials=8, epochs=40)
    out = tmp_path / "out"
    proc = archdsl("search", str(search), "--out", str(out), "--workers", "2")
    db = f"sqlite:///{out / 'study.db'}"
    load = lambda: optuna.load_study(study_name="search", storage=db)  # noqa: E731

    def both_training(trials: list[FrozenTrial]) -> FrozenTrial | None:
        running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("epoch", 0) >= 1]
        return running[0] if len({t.user_attrs.get("worker") for t in running}) == 2 else None

    wait_for(load, both_training, [proc])
    status = subprocess.run(
        [sys.executable, "-m", "archdsl", "status", str(out), "--json"], capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["study"] == "search" and data["budget"] == 8 and data["trials"]["running"] >= 2
    running = {r["worker"]: r for r in data["running"]}
    assert {"w0", "w1"} <= set(running)
    for r in running.values():
        assert r["host"] == os.uname().nodename and isinstance(r["pid"], int) and r["device"] == "cpu"
        assert r["epochs"] == 40 and 0 <= r["epoch"] <= 40
        assert r["heartbeat_age_s"] is not None and 0 <= r["heartbeat_age_s"] < 10  # heartbeat every second
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "interrupted"
    study = load()
    assert not study.get_trials(states=(TrialState.RUNNING,))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all(t.user_attrs.get("reason") == "interrupted" for t in failed)  # the trials that ran
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(retry_history(t)[0] for t in queued) == sorted(t.number for t in failed)


def test_two_workers_share_a_mysql_study(tmp_path: Path, mysql_url: str) -> None:
    search = write_search(tmp_path, trials=4, epochs=1)
    out = tmp_path / "out"
    results = finish([worker(search, mysql_url, out) for _ in range(2)])
    assert [code for code, _, _ in results] == [0, 0], [r[2][-3000:] for r in results]
    study = optuna.load_study(study_name="search", storage=mysql_url.replace("mysql://", "mysql+pymysql://"))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


@pytest.mark.slow
def test_a_trial_stopped_at_epoch_2_of_4_resumes_and_trains_the_2_left(tmp_path: Path, postgres_url: str) -> None:
    """SIGTERM to a worker in the third epoch of a 4-epoch trial: the trial is handed back, and its retry
    continues from the checkpoint of epoch 2 in the same directory (it trains epochs 2 and 3 only: the rows
    of epochs 0 and 1 in ``metrics.csv``, marked here, are kept, not written again), with the two values the
    lost trial reported in the pruner's view."""
    import csv

    from archdsl.search.record import TrialRecord
    from archdsl.train.fit import epochs_completed

    search = write_search(tmp_path, trials=1, epochs=4)
    base = tmp_path / "base.yaml"
    base.write_text(base.read_text().replace("size: 8", "size: 16"))  # epochs of seconds, not a tenth of one
    search.write_text(
        search.read_text().replace(
            "pruner: {name: none}", "pruner: {name: median, startup_trials: 0, warmup_epochs: 9}"
        )
    )
    out = tmp_path / "out"
    first = worker(search, postgres_url, out)
    load = lambda: optuna.load_study(study_name="search", storage=postgres_url)  # noqa: E731

    def at_epoch_2(trials: list[FrozenTrial]) -> FrozenTrial | None:
        return next((t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("epoch", 0) >= 2), None)

    victim = wait_for(load, at_epoch_2, [first])
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0 and json.loads(stdout.strip().splitlines()[-1])["stopped"] == "preempted", stderr
    lost = load().trials[victim.number]
    directory = out / "trials" / f"{victim.number:04d}"
    assert TrialRecord.of(lost).last_checkpoint == str((directory / "last.ckpt").resolve())
    assert epochs_completed(directory / "last.ckpt") == 2 and sorted(lost.intermediate_values) == [1, 2]
    metrics = directory / "metrics.csv"
    with metrics.open(newline="") as f:
        rows = list(csv.DictReader(f))
    marked = [r for r in rows if r.get("val/acc") and r["epoch"] == "1"]
    assert len(marked) == 1
    marked[0]["val/acc"] = "0.123456"  # a row of the first attempt: kept by a resume, gone if it started over
    with metrics.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    ((code, _, stderr),) = finish([worker(search, postgres_url, out)])
    assert code == 0, stderr[-3000:]
    trials = load().trials
    (retry,) = [t for t in trials if retry_history(t) == [victim.number]]
    record = TrialRecord.of(retry)
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert (record.resumed_from, record.resumed_epoch, record.epochs, record.started_over) == (
        victim.number,
        2,
        4,
        None,
    )
    assert record.checkpoint is not None and Path(record.checkpoint).parent == directory.resolve()
    assert sorted(retry.intermediate_values) == [1, 2, 3, 4]  # steps: epochs trained
    assert [retry.intermediate_values[s] for s in (1, 2)] == [lost.intermediate_values[s] for s in (1, 2)]
    with metrics.open(newline="") as f:
        val = [(r["epoch"], r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    assert [e for e, _ in val] == ["0", "1", "2", "3", "4"] and val[1][1] == "0.123456"  # 4: the final evaluation
