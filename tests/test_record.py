"""The typed trial record: one classification of trials, written and read through one module, and studies
written by the release before it still open, report, export and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archdsl.cli import main
from archdsl.search.record import (
    OUTCOMES,
    StudyRecord,
    TrialRecord,
    TrialWriter,
    epoch_values,
    outcome,
    promoted_attrs,
)
from archdsl.search.report.ranking import reported

FIXTURE = Path(__file__).parent / "fixtures" / "study_v0"


def _frozen(state: TrialState, values: list[float] | None = None, **attrs: object) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=state,
        values=values,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs=dict(attrs),
    )


CASES = {
    "complete": _frozen(TrialState.COMPLETE, [0.9]),
    "pruned": _frozen(TrialState.PRUNED, epochs=2),
    "rejected": _frozen(TrialState.PRUNED, rejected=True, reason="params 9 > budget.max_params 8"),
    "over_budget": _frozen(TrialState.FAIL, over_budget=True, reason="the budget of 3 trials was taken"),
    "preempted": _frozen(TrialState.FAIL, reason="preempted"),
    "interrupted": _frozen(TrialState.FAIL, reason="interrupted"),
    "stale": _frozen(TrialState.FAIL),
    "fault": _frozen(TrialState.FAIL, error="training: loss is nan", fault="training"),
    "bug": _frozen(TrialState.FAIL, error="KeyError: 'x'", bug=True, reason="a bug, not a training fault"),
    "running": _frozen(TrialState.RUNNING),
    "waiting": _frozen(TrialState.WAITING),
    "screened": _frozen(TrialState.FAIL, screened={"proxy": "naswot", "pool": 3, "score": 1.5}),
    "screening": _frozen(TrialState.RUNNING, screened={"proxy": "naswot", "pool": 3, "score": None}),
}


def test_every_outcome_is_told_apart_once() -> None:
    assert set(CASES) == set(OUTCOMES)
    assert {name: outcome(t) for name, t in CASES.items()} == {name: name for name in CASES}
    finished = {name for name, t in CASES.items() if TrialRecord.of(t).finished}
    assert finished == {"complete", "pruned", "rejected"}
    assert {name for name, t in CASES.items() if TrialRecord.of(t).failed} == {"fault", "bug"}
    assert TrialRecord.of(CASES["stale"]).why == "its worker was lost: no heartbeat"
    assert TrialRecord.of(CASES["fault"]).why == "training: loss is nan"


def test_the_writer_and_the_record_agree_on_every_field(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    trial = study.ask()
    writer = TrialWriter(trial)
    writer.worker(host="h", pid=12, pid_started=34, worker="h:12", versions={"archdsl": "0.1.0"})
    writer.device("cuda:1")
    writer.plan(1234, 5678)
    writer.latency(1.5)
    writer.spec({"name": "x", "train": {"epochs": 7}})
    writer.epoch(3)
    writer.checkpoint(tmp_path / "trials" / "0000" / "best.ckpt", "h")
    writer.result(val_acc=0.9, val_loss=0.3, test_acc=0.8, seconds=2.5, epochs=7)
    writer.proxies({"naswot": 12.5, "params": 1234})
    study.tell(trial, 0.9)
    record = TrialRecord.of(study.trials[0])
    assert (record.host, record.pid, record.pid_started, record.worker, dict(record.versions)) == (
        "h",
        12,
        34,
        "h:12",
        {"archdsl": "0.1.0"},
    )
    assert (record.device, record.params, record.flops, record.latency_ms) == ("cuda:1", 1234, 5678, 1.5)
    assert (record.epoch, record.epochs, record.trained_epochs, record.seconds) == (3, 7, 7, 2.5)
    assert record.metrics() == {"val/acc": 0.9, "val/loss": 0.3, "test/acc": 0.8}
    assert record.checkpoint == str((tmp_path / "trials" / "0000" / "best.ckpt").resolve())
    assert record.outcome == "complete" and record.retry_of == ()
    assert dict(record.proxies) == {"naswot": 12.5, "params": 1234.0} and not record.screened
    # a screened proposal and the trial the prescreen queued for it
    proposal = study.ask()
    TrialWriter(proposal).screening("naswot", pool=1, score=3.25)
    study.tell(proposal, state=TrialState.FAIL)
    study.enqueue_trial({"x": 0.5}, user_attrs=promoted_attrs(1, "naswot", 3.25))
    screened, queued = (TrialRecord.of(t) for t in study.trials[1:])
    assert (screened.outcome, screened.screen_score, screened.screen_pool) == ("screened", 3.25, 1)
    assert (queued.outcome, queued.promoted_from, queued.screen_score) == ("waiting", 1, 3.25)
    # the same keys the release before the record wrote (studies keep their meaning)
    assert study.trials[0].user_attrs["val/acc"] == 0.9 and study.trials[0].user_attrs["params"] == 1234


def test_records_of_damaged_or_foreign_attributes_read_as_absent() -> None:
    record = TrialRecord.of(_frozen(TrialState.COMPLETE, [1.0], params="many", epoch=None, spec=[1], pid=True))
    assert (record.params, record.epoch, record.spec, record.pid) == (None, 0, None, None)
    foreign = optuna.create_study()
    stored = StudyRecord.of(foreign)
    assert (stored.definition(), stored.base(), stored.out_dir) == (None, None, None)
    assert stored.objective_names(2) == ["value0", "value1"]


@pytest.fixture
def old_study(tmp_path: Path) -> Path:
    """A copy of the study the release before the record wrote, somewhere else than where it was made."""
    shutil.copytree(FIXTURE, tmp_path / "study_v0")
    return tmp_path / "study_v0"


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def test_a_study_of_the_previous_release_opens_reports_and_exports(
    old_study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = old_study / "out"
    status = _json(["status", str(out)], capsys)
    assert status["storage"] == f"sqlite:///{(out / 'study.db').resolve()}"  # not the machine it was made on
    assert status["budget"] == 5 and status["objectives"] == ["val/acc"]
    assert status["trials"] == {
        "complete": 2,
        "pruned": 0,
        "rejected": 2,
        "fail": 0,
        "retried": 0,
        "over_budget": 0,
        "running": 0,
        "waiting": 0,
        "finished": 4,
    }
    study = optuna.load_study(study_name="study_v0", storage=f"sqlite:///{out / 'study.db'}")
    assert [outcome(t) for t in study.trials] == ["rejected", "rejected", "complete", "complete"]
    best = _json(["best", str(out)], capsys)
    assert [b["number"] for b in best["best"]] == [2]  # type: ignore[attr-defined,index]
    assert best["best"][0]["checkpoint"] == str(out / "trials" / "0002" / "best.ckpt")  # type: ignore[index]
    assert main(["report", str(out), "--out", str(old_study / "report")]) == 0
    assert (old_study / "report" / "index.html").is_file()
    assert main(["export", str(out), "--out", str(old_study / "exported")]) == 0
    manifest = json.loads((old_study / "exported" / "manifest.json").read_text())
    assert manifest["metrics"]["val/acc"] == pytest.approx(0.1)


@pytest.mark.slow
def test_resuming_a_study_of_the_previous_release_finishes_its_budget(
    old_study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(old_study)
    result = _json(["search", "study_v0.yaml", "--out", "out"], capsys)
    assert result["stopped"] == "budget"
    trials = result["trials"]
    assert sum(trials.values()) == 5 and trials["fail"] == 0  # type: ignore[attr-defined]
    study = optuna.load_study(study_name="study_v0", storage="sqlite:///out/study.db")
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]  # one more trial, none run again


def test_reported_values_are_keyed_by_epochs_trained_in_studies_old_and_new() -> None:
    """Since the pruners count epochs trained, a value is reported at step = epochs trained; a trial of an earlier
    release reported at the zero-based epoch index and reads the same."""
    new = create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5, 2: 0.7})
    old = create_trial(state=TrialState.PRUNED, intermediate_values={0: 0.5, 1: 0.7})
    assert epoch_values(new) == epoch_values(old) == {1: 0.5, 2: 0.7}
    assert reported(new) == reported(old) and (reported(old).value, reported(old).epoch) == (0.7, 2)  # type: ignore[union-attr]
