"""The SLURM launcher run by a real SLURM (Debian's slurm-wlm on this one machine), not read as text: a CPU-node
job array runs its search to the budget on PostgreSQL, a job whose workers cannot start fails as a job, and the
time-limit warning hands the running trials back and requeues the array task, whose retries finish the study."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from archdsl.cli import main
from archdsl.search.record import TrialRecord, outcome
from tests.slurm import Slurm, missing
from tests.test_search import BASE, SEARCH, write_search

pytestmark = pytest.mark.slow

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
PARAMS_ONLY = SEARCH.replace("pruner:", "objectives: [{{metric: params}}]\npruner:")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    lacking = missing()
    if lacking:
        reason = f"no SLURM here (missing {', '.join(lacking)}: apt-get install slurm-wlm munge)"
        if os.environ.get("ARCHDSL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"ARCHDSL_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    cluster = Slurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _script(tmp_path: Path, search: Path, storage: str, *options: str) -> Path:
    script = tmp_path / "job.sh"
    path = f"export PATH={Path(sys.executable).parent}:$PATH"
    argv = ["cluster", "slurm", str(search), "--storage", storage, "--dir", str(tmp_path / "runs")]
    assert main([*argv, "--setup", path, "--out", str(script), *options]) == 0
    return script


def _study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=storage)


def _log(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "runs" / "logs").glob("slurm-*.out")))


def test_two_cpu_array_tasks_finish_the_study(slurm: Slurm, tmp_path: Path, postgres_url: str) -> None:
    """Acceptance 1: ``--nodes 2 --gpus-per-node 0 --cpus-per-worker 1``: two array tasks, one worker each."""
    search = write_search(tmp_path, trials=6)  # digits, 2 epochs a trial
    script = _script(tmp_path, search, postgres_url, "--nodes", "2", "--gpus-per-node", "0", "--cpus-per-worker", "1")
    job = slurm.submit(script)
    records = [slurm.wait(f"{job}_{task}", ENDED, timeout=300) for task in (0, 1)]
    assert [(r["JobState"], r["ExitCode"], r["NumCPUs"]) for r in records] == [("COMPLETED", "0:0", "1")] * 2, _log(
        tmp_path
    )
    trials = _study(postgres_url).trials
    assert sorted(outcome(t) for t in trials) == ["complete"] * 6  # exactly six, nothing running
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # no parameter set twice
    assert "--device cpu" in script.read_text() and "--gpus-per-task" not in script.read_text()


def test_a_job_whose_workers_cannot_start_fails_as_a_job(slurm: Slurm, tmp_path: Path, postgres_url: str) -> None:
    """GPU nodes (fake GPUs) but a CPU build of torch: each worker refuses ``--device cuda`` before touching the
    study, and SLURM records the job as failed (it recorded COMPLETED 0:0 while every worker had died)."""
    search = write_search(tmp_path, PARAMS_ONLY, trials=4)
    script = _script(tmp_path, search, postgres_url, "--nodes", "1", "--gpus-per-node", "2", "--cpus-per-gpu", "1")
    job = slurm.submit(script)
    record = slurm.wait(f"{job}_0", ENDED, timeout=300)
    assert record["JobState"] == "FAILED" and record["ExitCode"] == "2:0", _log(tmp_path)
    assert "--device: cuda needs a CUDA build of torch" in _log(tmp_path)
    with pytest.raises(KeyError):  # the study was never created
        _study(postgres_url)


def test_the_time_limit_warning_hands_trials_back_and_the_requeued_task_finishes(
    slurm: Slurm, tmp_path: Path, postgres_url: str
) -> None:
    """``--signal=B:USR1@N`` fires in the batch script (sent here at once with ``scancel --signal=USR1 --batch``):
    the workers get SIGTERM themselves, hand their running trials back as ``preempted`` and exit 0, the task
    requeues, and its second run finishes the budget with the handed-back parameters. Before, the script's
    ``kill -TERM`` of srun made srun SIGKILL the workers: trials stayed RUNNING until the grace period."""
    base = BASE.replace("epochs: 2", "epochs: 30")  # long enough to be running when the warning comes
    text = SEARCH.replace("params:", "set: {{train.epochs: 30}}\nparams:")
    text = text.replace("pruner: {{name: none}}", "pruner: {{name: median, startup_trials: 0, warmup_epochs: 99}}")
    search = write_search(tmp_path, text, 3, base)
    options = ("--nodes", "1", "--gpus-per-node", "0", "--workers-per-node", "2", "--cpus-per-worker", "1")
    job = f"{slurm.submit(_script(tmp_path, search, postgres_url, *options))}_0"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # both workers in a trial that has reported an epoch
        try:
            running = [t for t in _study(postgres_url).trials if outcome(t) == "running" and TrialRecord.of(t).epoch]
        except KeyError:
            running = []
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert len(running) == 2, _log(tmp_path)
    slurm.run("scancel", "--signal=USR1", "--batch", job)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and slurm.job(job).get("Restarts", "0") == "0":
        time.sleep(0.5)
    assert slurm.job(job).get("Restarts") == "1", _log(tmp_path)
    # SLURM starts the requeued task itself (~20 s with cred_expire=10); forcing StartTime=now inside that window
    # had slurmctld kill it at once ("Killing non-startable batch job: Job credential revoked", FAILED 1:0)
    record = slurm.wait(job, ENDED, timeout=600)
    log = _log(tmp_path)
    assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0"), log
    assert "forcing job termination" not in log and "Killed" not in log
    trials = _study(postgres_url).trials
    handed = [t for t in trials if outcome(t) == "preempted"]
    assert {t.number for t in handed} == {t.number for t in running}
    retries = {tuple(TrialRecord.of(t).retry_of): t for t in trials if TrialRecord.of(t).retry_of}
    assert {r[-1] for r in retries} == {t.number for t in handed}
    assert all(outcome(t) == "complete" and t.params == trials[r[-1]].params for r, t in retries.items())
    for (number,), retry in retries.items():  # each retry resumed at the epoch its trial reached: reports continue
        lost, record = trials[number], TrialRecord.of(retry)
        reached = TrialRecord.of(lost).epoch
        assert (record.resumed_from, record.resumed_epoch, record.epochs) == (number, reached, 30) and reached > 0
        assert sorted(retry.intermediate_values) == list(range(1, 31))  # steps: epochs trained
        assert all(retry.intermediate_values[s] == v for s, v in lost.intermediate_values.items() if s <= reached)
    assert sum(outcome(t) == "complete" for t in trials) == 3


def test_a_two_process_trial_trains_inside_a_real_srun_step(slurm: Slurm, tmp_path: Path, postgres_url: str) -> None:
    """A 2-process gloo trial (``train.devices: 2`` on the CPU) inside the worker ``srun`` starts: its ranks come
    from its own spawn, not from SLURM's variables; rank 0 reports every epoch to the study and writes
    ``metrics.csv``."""
    base = BASE.replace("data: {name: digits", "accelerator: cpu, devices: 2, data: {name: digits")
    text = SEARCH.replace("pruner: {{name: none}}", "pruner: {{name: median, startup_trials: 0, warmup_epochs: 99}}")
    search = write_search(tmp_path, text, 1, base)
    options = ("--nodes", "1", "--gpus-per-node", "0", "--cpus-per-worker", "2")
    job = f"{slurm.submit(_script(tmp_path, search, postgres_url, *options))}_0"
    record = slurm.wait(job, ENDED, timeout=300)
    assert (record["JobState"], record["ExitCode"], record["NumCPUs"]) == ("COMPLETED", "0:0", "2"), _log(tmp_path)
    (trial,) = _study(postgres_url).trials
    assert outcome(trial) == "complete" and TrialRecord.of(trial).device == "cpu x2"
    assert sorted(trial.intermediate_values) == [1, 2]  # reported by rank 0 after each epoch
    directory = tmp_path / "runs" / "trials" / "0000"
    assert (directory / "metrics.csv").is_file() and (directory / "best.ckpt").is_file()
    assert "srun" not in _log(tmp_path)  # Lightning's "srun is available but not used" warning
