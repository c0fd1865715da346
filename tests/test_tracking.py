"""Tracking with the instruments people use: ``train.loggers: [csv, tensorboard, mlflow]``.

TensorBoard event files and an MLflow store are read back with their own readers (``EventAccumulator``,
``MlflowClient``); a search's trials are MLflow runs nested under one parent run per study; a logger whose extra
is missing is refused, located, before anything trains.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli import main
from archdsl.errors import SpecError
from archdsl.spec.load import spec_from_text
from tests.test_search import BASE, SEARCH, write_search
from tests.test_train import TINY, tiny

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

from mlflow.entities import ViewType  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TRACKED = "  loggers: [csv, tensorboard, mlflow]\n"


@pytest.fixture(autouse=True)
def _no_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default store (a SQLite file in the run's directory) is what these tests read."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _csv_val(out: Path) -> list[float]:
    with (out / "metrics.csv").open() as f:
        return [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]


def test_training_logs_to_tensorboard_and_mlflow_and_a_resume_continues_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny(tmp_path, epochs=1)
    spec.write_text(spec.read_text() + TRACKED)
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    store = f"sqlite:///{out.resolve() / 'mlflow.db'}"
    assert f"tensorboard: {out.resolve() / 'tensorboard'}" in line and f"mlflow: {store} (run " in line
    assert main(["train", str(spec), "--out", str(out), "--resume", "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    logs = result["logs"]
    assert logs["csv"] == str(out.resolve() / "metrics.csv")
    assert logs["tensorboard"] == str(out.resolve() / "tensorboard") and logs["mlflow"] == store

    # epoch 0, the first run's final validation of best.ckpt, epoch 1 (resumed), the second's final validation
    val = _csv_val(out)
    assert len(val) == 4 and result["val/acc"] == pytest.approx(val[-1])

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("val/acc")
    assert [e.value for e in scalars] == pytest.approx(val)
    assert [e.step for e in scalars] == sorted(e.step for e in scalars)
    assert {"train/loss_epoch", "val/loss", "test/acc"} <= set(events.Tags()["scalars"])

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None and experiment.artifact_location == (out.resolve() / "mlartifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])  # the resume continued the run it started
    assert run.info.run_id == logs["mlflow_run"] and run.info.status == "FINISHED" and run.info.run_name == "tiny"
    params = run.data.params
    assert params["train.epochs"] == "1"  # as first logged: MLflow never changes a parameter
    assert params["stages.0.blocks.0.type"] == "bottleneck" and params["train.optimizer.lr"] == "0.003"
    assert params["train.loggers"] == '["csv", "tensorboard", "mlflow"]'
    assert run.data.tags["archdsl.checkpoint"] == result["checkpoint"]
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.value for m in history] == pytest.approx(val)
    assert run.data.metrics["test/acc"] == pytest.approx(result["test/acc"])
    assert "MLFLOW_TRACKING_URI" not in os.environ  # Lightning's logger would have set it for the process


def test_a_search_gives_one_mlflow_run_per_trial_nested_under_its_study(tmp_path: Path) -> None:
    from archdsl.launch.run import run_search
    from archdsl.search.space.load import load_search

    base = BASE.replace("train: {epochs: 2,", "train: {epochs: 1, loggers: [csv, mlflow],")
    assert "loggers" in base
    path = write_search(tmp_path, SEARCH, trials=4, base=base)
    out = tmp_path / "out"
    result = run_search(load_search(path), out, progress=False)
    assert result.trials["complete"] == 4

    import optuna

    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    trials = {t.number: t for t in study.get_trials()}
    client = MlflowClient(f"sqlite:///{out.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("search")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    (parent,) = [r for r in runs if r.data.tags.get("archdsl.role") == "study"]
    assert parent.data.tags["archdsl.study"] == "search" and parent.info.run_name == "search"
    children = {int(r.data.tags["archdsl.trial"]): r for r in runs if r is not parent}
    assert sorted(children) == [0, 1, 2, 3]
    for number, run in children.items():
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["archdsl.study"] == "search"
        assert run.info.run_name == f"trial {number}" and run.info.status == "FINISHED"
        params = trials[number].params
        assert json.loads(tags["archdsl.params"]) == params
        assert tags["archdsl.param.stages._.blocks._.mixer.num_heads"] == str(
            params["stages.*.blocks.*.mixer.num_heads"]
        )
        assert tags["archdsl.param.train.optimizer.lr"] == str(params["train.optimizer.lr"])
        assert float(run.data.params["train.optimizer.lr"]) == pytest.approx(params["train.optimizer.lr"])
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert len(history) == 2  # the epoch, then the final validation of best.ckpt
        assert history[-1].value == pytest.approx(trials[number].values[0])
        assert Path(tags["archdsl.checkpoint"]).parent.parent == out.resolve() / "trials"


def test_workers_racing_to_make_the_parent_run_end_with_one(tmp_path: Path) -> None:
    """Two workers each made a parent run and nested a trial under it: the next one to look keeps the earliest,
    moves the other's trial under it and deletes the other."""
    from archdsl.search.tracking import study_run
    from archdsl.spec.train import MlflowSpec
    from archdsl.train.mlflow_runs import mlflow_client, tracking_uri

    settings = MlflowSpec(experiment="s")  # one experiment for two studies
    client = mlflow_client(tracking_uri(settings, tmp_path), tmp_path)
    eid = client.create_experiment("s")
    tags = {"archdsl.role": "study", "archdsl.study": "s"}
    first = client.create_run(eid, tags=tags, start_time=1_000).info.run_id
    second = client.create_run(eid, tags=tags, start_time=2_000).info.run_id
    other = client.create_run(eid, tags={"archdsl.role": "study", "archdsl.study": "another"}).info.run_id
    child = client.create_run(eid, tags={"mlflow.parentRunId": second}).info.run_id
    assert study_run(settings, tmp_path, "s") == first
    assert client.get_run(second).info.lifecycle_stage == "deleted"
    assert client.get_run(second).data.tags["archdsl.merged_into"] == first
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == first
    assert client.get_run(other).info.lifecycle_stage == "active"
    # a trial nested under the merged run as it was deleted (the race's last window) is moved by the next look
    late = client.create_run(eid, tags={"mlflow.parentRunId": second}).info.run_id
    assert study_run(settings, tmp_path, "s") == first
    assert client.get_run(late).data.tags["mlflow.parentRunId"] == first
    assert study_run(settings, tmp_path, "another") == other


def test_a_logger_without_its_extra_is_a_located_error_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from archdsl.launch.run import run_search
    from archdsl.search.space.load import load_search
    from archdsl.validate import validate_file

    spec = tiny(tmp_path, epochs=1)
    spec.write_text(spec.read_text() + TRACKED)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the tracking extra were not installed
    with pytest.raises(SpecError) as err:
        validate_file(spec)
    assert [str(p) for p in err.value.problems] == [
        f"{spec}:12:31: train.loggers.2: 'mlflow' needs the tracking extra: pip install 'archdsl[tracking]', "
        "got no module named mlflow"
    ]
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{spec}:12:18: train.loggers.1: 'tensorboard' needs the tracking extra: pip install 'archdsl[tracking]', "
        "got no module named tensorboard",
        f"{spec}:12:31: train.loggers.2: 'mlflow' needs the tracking extra: pip install 'archdsl[tracking]', "
        "got no module named mlflow",
    ]
    assert not out.exists()
    assert main(["validate", str(spec)]) == 2
    assert "train.loggers.1: 'tensorboard' needs the tracking extra" in capsys.readouterr().err

    # a search is refused before any study is made: every trial would fail
    base = BASE.replace("train: {epochs: 2,", "train: {epochs: 1, loggers: [csv, mlflow],")
    path = write_search(tmp_path / "search", SEARCH, trials=1, base=base)
    with pytest.raises(SpecError) as err:
        run_search(load_search(path), tmp_path / "search" / "out", progress=False)
    (problem,) = err.value.problems
    assert str(problem) == (
        f"{path.parent / 'base.yaml'}:12:35: train.loggers.1: 'mlflow' needs the tracking extra: "
        "pip install 'archdsl[tracking]', got no module named mlflow"
    )
    assert not (tmp_path / "search" / "out").exists()
    with pytest.raises(SpecError, match=r"train\.loggers\.1: 'mlflow' needs the tracking extra"):
        validate_file(path)


@pytest.mark.parametrize(
    ("loggers", "message"),
    [
        ("[tensorboard]", "train.loggers: must start with csv (metrics.csv is always written"),
        ("[csv, mlflow, mlflow]", "train.loggers: names each logger once, got mlflow more than once"),
        ("[csv, wandb]", "train.loggers.1: unknown value 'wandb'"),
    ],
)
def test_the_loggers_list_starts_with_csv_and_names_known_loggers_once(loggers: str, message: str) -> None:
    text = TINY.format(epochs=1, lr=3e-3, opt="adamw", data="{name: digits}", classes=10, channels=1)
    with pytest.raises(SpecError) as err:
        spec_from_text(f"{text}  loggers: {loggers}\n", "t.yaml")
    assert message in str(err.value)
    assert spec_from_text(text).train.loggers == ("csv",)


def test_the_registry_is_the_spec_s_list_and_nothing_of_a_tracker_is_imported_unasked(tmp_path: Path) -> None:
    """``archdsl validate`` of a spec naming every logger imports neither MLflow nor TensorBoard (nor torch)."""
    from typing import get_args

    from archdsl.spec.train import LoggerName
    from archdsl.train.loggers import LOGGERS

    assert set(LOGGERS.names()) == set(get_args(LoggerName))
    spec = tiny(tmp_path, epochs=1)
    spec.write_text(spec.read_text() + TRACKED)
    code = (
        "import sys; from archdsl.validate import validate_file; import archdsl.search.tracking; "
        f"validate_file({str(spec)!r}); "
        "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch', 'lightning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
