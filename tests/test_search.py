"""Architecture search: definitions, resolve, rejection, resumable studies, best, report, the optuna CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

import archdsl
from archdsl.cli import main
from archdsl.errors import ArchDSLError, SearchError
from archdsl.launch.run import run_search
from archdsl.search.space.load import load_search
from archdsl.search.space.resolution import resolve

BASE = """\
name: tiny_base
input: {channels: 1, size: 8}
stem: {type: conv, channels: 16, kernel_size: 3}
stages:
  - channels: 32
    stride: 1
    blocks: [{type: bottleneck, width: 8, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}}]
  - channels: 32
    stride: 2
    blocks: [{type: bottleneck, width: 8, mixer: {type: global_attention, num_heads: 2}}]
head: {type: classifier, num_classes: 10}
train: {epochs: 2, batch_size: 128, optimizer: {lr: 3.0e-3}, data: {name: digits, augment: false}}
"""

ROOT = Path(__file__).resolve().parent.parent

SEARCH = """\
base: base.yaml
budget: {{trials: {trials}}}
sampler: {{name: random, seed: 0}}
pruner: {{name: none}}
workers: {{heartbeat_seconds: 1, grace_seconds: 3}}
params:
  conv_stages: {{int: [0, 1]}}
  stages.*.blocks.*.mixer.num_heads: {{choice: [2, 4]}}
  stages.0.blocks.0.mixer.halo_size: {{int: [1, 2]}}
  train.optimizer.lr: {{float: [1.0e-3, 5.0e-3], log: true}}
"""


def write_search(tmp: Path, text: str = SEARCH, trials: int = 3, base: str = BASE) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "base.yaml").write_text(base)
    path = tmp / "search.yaml"
    path.write_text(text.format(trials=trials))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 3-trial study (shared by the read-only tests)."""
    tmp = tmp_path_factory.mktemp("finished")
    path = write_search(tmp)
    out = tmp / "out"
    result = run_search(load_search(path), out, progress=False)
    assert sum(result.trials.values()) == 3
    return path, out


def _problems(path: Path) -> list[str]:
    with pytest.raises(SearchError) as err:
        load_search(path)
    return [str(p) for p in err.value.problems]


def test_unknown_path_is_located(tmp_path: Path) -> None:
    text = SEARCH + "  stages.5.channels: {{choice: [8]}}\n  stem.chanels: {{choice: [8]}}\n"
    problems = _problems(write_search(tmp_path, text))
    assert problems == [
        f"{tmp_path}/search.yaml:11:3: params.stages.5.channels: no such path in the base spec {tmp_path}/base.yaml",
        f"{tmp_path}/search.yaml:12:3: params.stem.chanels: no such path in the base spec {tmp_path}/base.yaml"
        " (did you mean 'stem.channels'?)",
    ]


def test_conv_stages_must_name_stages_with_a_mixer(tmp_path: Path) -> None:
    base = BASE.replace(
        "blocks: [{type: bottleneck, width: 8, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}}]",
        "blocks: [{type: basic}]",
    )
    line, halo = _problems(write_search(tmp_path, base=base))
    assert "params.stages.0.blocks.0.mixer.halo_size: no such path" in halo
    assert line.startswith(f"{tmp_path}/search.yaml:7:3: params.conv_stages: conv_stages=1 makes stage 0 a conv stage")
    assert "has no mixer to replace (blocks: basic)" in line
    (line,) = _problems(write_search(tmp_path, SEARCH.replace("[0, 1]", "[0, 3]")))
    assert line.endswith("params.conv_stages: must lie in 0..2 (the base's stages), got [0, 3]")


def test_bad_parameter_forms_are_located(tmp_path: Path) -> None:
    text = SEARCH.replace("{{choice: [2, 4]}}", "{{choise: [2, 4]}}").replace("[1.0e-3, 5.0e-3]", "[5.0e-3, 1.0e-3]")
    problems = _problems(write_search(tmp_path, text))
    assert problems[0].startswith(
        f"{tmp_path}/search.yaml:8:3: params.stages.*.blocks.*.mixer.num_heads: a parameter is one of"
    )
    assert problems[1] == (
        f"{tmp_path}/search.yaml:10:24: params.train.optimizer.lr.float: low must not exceed high, got [0.005, 0.001]"
    )


def test_branch_paths_are_checked_against_their_branch(tmp_path: Path) -> None:
    text = SEARCH + (
        "  stages.1.blocks.0:\n"
        "    choice:\n"
        "      glob: {{type: bottleneck, width: 8, mixer: {{type: global_attention, num_heads: 2}}}}\n"
        "      halo: {{type: bottleneck, width: 8, mixer: {{type: halo, block_size: 2, num_heads: 2}}}}\n"
        "    params:\n"
        "      halo: {{mixer.halo_size: {{int: [1, 2]}}, mixer.halo_sise: {{int: [1, 2]}}}}\n"
    )
    (line,) = _problems(write_search(tmp_path, text))
    assert "params.stages.1.blocks.0.params.halo.mixer.halo_sise: no such path in branch 'halo'" in line


def test_resolve_applies_ties_branches_and_conv_stages(tmp_path: Path) -> None:
    text = SEARCH + (
        "  stages.1.blocks.0:\n"
        "    choice:\n"
        "      glob: {{type: bottleneck, width: 8, mixer: {{type: global_attention, num_heads: 2}}}}\n"
        "      halo: {{type: bottleneck, width: 8, mixer: {{type: halo, block_size: 2, num_heads: 2}}}}\n"
        "    params:\n"
        "      halo: {{mixer.halo_size: {{int: [1, 2]}}}}\n"
    )
    space = load_search(write_search(tmp_path, text))
    params = {
        "conv_stages": 1,
        "stages.*.blocks.*.mixer.num_heads": 4,
        "stages.0.blocks.0.mixer.halo_size": 2,
        "train.optimizer.lr": 2e-3,
        "stages.1.blocks.0": "halo",
        "stages.1.blocks.0[halo].mixer.halo_size": 2,
    }
    spec = resolve(space, FixedTrial(params))
    assert spec.stages[0].blocks[0].mixer.type == "conv"  # conv_stages=1
    assert spec.stages[1].blocks[0].mixer.type == "halo"
    assert spec.stages[1].blocks[0].mixer.halo_size == 2  # the branch parameter
    assert spec.stages[1].blocks[0].mixer.num_heads == 4  # the tied wildcard, applied after the branch
    assert spec.train.optimizer.lr == 2e-3
    glob = resolve(space, FixedTrial({**params, "conv_stages": 0, "stages.1.blocks.0": "glob"}))
    assert glob.stages[0].blocks[0].mixer.halo_size == 2
    assert glob.stages[1].blocks[0].mixer.type == "global_attention"


def test_impossible_combinations_are_rejected_before_training(tmp_path: Path) -> None:
    text = """\
base: base.yaml
budget: {{trials: {trials}}}
sampler: {{name: grid}}
params:
  stages.0.blocks.0.mixer.block_size: {{choice: [3, 4]}}
  stages.*.blocks.*.mixer.num_heads: {{choice: [3, 2]}}
  train.epochs: {{choice: [1]}}
"""
    out = tmp_path / "out"
    result = run_search(load_search(write_search(tmp_path, text, trials=4)), out, progress=False)
    assert result.trials == {"complete": 1, "pruned": 0, "rejected": 3, "fail": 0}
    study = optuna.load_study(study_name="search", storage=result.storage)
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    assert len(rejected) == 3
    for t in rejected:
        assert t.state == TrialState.PRUNED
        reason = t.user_attrs["reason"]
        if t.params["stages.0.blocks.0.mixer.block_size"] == 3:
            assert "feature map 8x8 is not divisible by block_size=3" in reason
        else:
            assert "num_heads" in reason and "3" in reason
        assert t.user_attrs["reject_ms"] < 1000
        assert not (out / "trials" / f"{t.number:04d}").exists()  # nothing was built or trained


def test_search_json_best_and_counts(finished: tuple[Path, Path]) -> None:
    _path, out = finished
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    for t in complete:
        ckpt = out / t.user_attrs["checkpoint"]
        assert ckpt.is_file() and ckpt.name == "best.ckpt"
        test_acc = t.user_attrs["test/acc"]
        assert test_acc * 360 == pytest.approx(round(test_acc * 360)) and t.user_attrs["val/acc"] == t.values[0]


def test_best_then_train_reproduces_the_architecture(
    finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = finished
    assert main(["best", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["best"]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    trial = study.trials[row["number"]]
    assert row["values"] == [study.best_value] and row["params"] == trial.params
    # both paths absolute, whatever the working directory: the spec written, the checkpoint kept
    assert row["spec"] == str((out / "best.yaml").resolve())
    assert Path(row["checkpoint"]).is_absolute() and Path(row["checkpoint"]).is_file()
    spec = archdsl.load_spec(out / "best.yaml")
    plan = archdsl.plan_model(spec)
    assert plan.params == trial.user_attrs["params"]
    stored = archdsl.spec_from_text(json.dumps(trial.user_attrs["spec"]))
    assert spec == stored and plan == archdsl.plan_model(stored)
    # replaying the parameters through resolve gives the same model too
    space = load_search(finished[0])
    assert resolve(space, FixedTrial(trial.params)) == stored


def test_report_writes_plots_and_html(finished: tuple[Path, Path], tmp_path: Path) -> None:
    import re

    _, out = finished
    assert main(["report", str(out)]) == 0  # default: DIR/report
    report = out / "report"
    files = {p.name for p in report.iterdir()}
    assert {"index.html", "history.png", "parallel_coordinates.png"} <= files
    assert (report / "history.png").read_bytes()[:4] == b"\x89PNG"
    html = (report / "index.html").read_text()
    assert "history.png" in html and "<table>" in html
    # a warning where the plots rest on too few trials
    assert "rest on 3 completed trials (fewer than 10): read them as indicative" in html
    # short labels in the header, the full path in its title; rounded values; best first and marked
    assert "<th title='stages.*.blocks.*.mixer.num_heads'>num_heads</th>" in html
    assert "<th title='train.optimizer.lr'>lr</th>" in html
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    best = study.best_trial
    rows = re.findall(r"<tr( class='best')?><td>(\d+)( ★)?</td>", html.split("<h2>Trials")[1])
    assert rows[0] == (" class='best'", str(best.number), " ★") and len(rows) == 3
    values = [t.value for t in sorted(study.trials, key=lambda t: -t.value)]
    assert [int(r[1]) for r in rows] == [t.number for t in sorted(study.trials, key=lambda t: (-t.value, t.number))]
    assert values[0] == best.value
    assert not re.search(r"<td>[-\d]*\.\d{7,}", html)  # no value printed to 17 digits


def test_importances_count_only_the_trials_where_a_parameter_was_active() -> None:
    from archdsl.search.report.html import importances

    study = optuna.create_study(direction="maximize")
    a = optuna.distributions.FloatDistribution(0.0, 1.0)
    b = optuna.distributions.IntDistribution(1, 2)
    rng = np.random.default_rng(0)
    for i in range(30):
        x = float(rng.uniform())
        params: dict[str, object] = {"a": x}
        dists: dict[str, optuna.distributions.BaseDistribution] = {"a": a}
        if i % 3 == 0:  # "b" exists in a third of the trials only
            params["b"], dists["b"] = 1 + i % 2, b
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=x))
    rows = {name: (value, n) for name, value, n in importances(study)}
    assert rows["a"][1] == 30 and rows["b"][1] == 10
    assert rows["a"][0] > 0.9 > rows["b"][0]  # the objective is "a" itself


def test_optuna_cli_lists_the_trials(finished: tuple[Path, Path]) -> None:
    _, out = finished
    optuna_cli = shutil.which("optuna") or str(Path(sys.executable).parent / "optuna")
    proc = subprocess.run(
        [optuna_cli, "trials", "--study-name", "search", "--storage", f"sqlite:///{out / 'study.db'}", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}


def test_changed_definition_is_refused_unless_new_study(finished: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    changed = write_search(tmp_path / "changed", SEARCH.replace("[2, 4]", "[2]"))
    with pytest.raises(SearchError, match=r"made by a different search definition.*--new-study"):
        run_search(load_search(changed), copy, study_name="search", progress=False)
    result = run_search(load_search(changed), copy, study_name="search", new_study=True, trials=1, progress=False)
    assert sum(result.trials.values()) == 1


def test_exported_best_trial_has_the_recorded_accuracy(finished: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    from archdsl.train.data.digits import load_digits_splits

    _, out = finished
    assert main(["export", str(out), "--out", str(tmp_path / "art")]) == 0
    model = archdsl.load_model(str(tmp_path / "art"))
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    assert manifest["metrics"]["val/acc"] == study.best_value
    xs, ys = load_digits_splits(1, 8)
    with torch.no_grad():
        acc = (model(xs[1]).argmax(1) == ys[1]).float().mean().item()
    assert acc == pytest.approx(study.best_value, abs=1e-6)


def test_tradeoff_table_lists_the_rows_beside_the_paper(tmp_path: Path) -> None:
    from archdsl.search.report.html import tradeoff_table

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 't.db'}", study_name="t")
    for n, (acc, sec) in enumerate([(0.96, 30.0), (0.97, 20.0), (0.95, 10.0)]):
        trial = optuna.trial.create_trial(
            params={"conv_stages": n},
            distributions={"conv_stages": optuna.distributions.IntDistribution(0, 3)},
            value=acc,
            user_attrs={"val/acc": acc, "seconds": sec},
        )
        study.add_trial(trial)
    lines = tradeoff_table(study).splitlines()
    assert lines[0].startswith(
        "| conv stages | attention stages | val acc (ours, digits) | train time (ours, / conv 1,2; indicative)"
    )
    assert len(lines) == 2 + 3
    assert lines[2] == "| – | 1, 2, 3, 4 | 0.9600 | 3.00 (30.0 s) | 84.9 | 1.9 |"
    assert lines[4] == "| 1, 2 | 3, 4 | 0.9500 | 1.00 (10.0 s) | 84.7 | 1.0 |"


def test_trials_on_the_command_line_win_over_the_files_timeout_and_the_stop_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archdsl.cli import main

    text = SEARCH.replace("budget: {{trials: {trials}}}", "budget: {{trials: {trials}, timeout_minutes: 1.0e-6}}")
    path = write_search(tmp_path, text, trials=2)
    out = tmp_path / "out"
    # the file's clock (60 microseconds) runs out before the first trial
    assert main(["search", str(path), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["stopped"] == "timeout" and summary["trials"]["complete"] == 0
    assert "search stopped (timeout): the timeout of 1e-06 min was reached after 0 of 2 trials" in captured.err
    # --trials alone runs the count asked for; --timeout given too brings the clock back
    assert main(["search", str(path), "--out", str(out), "--trials", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stopped"] == "budget" and "search stopped" not in captured.err
    assert main(["search", str(path), "--out", str(out), "--trials", "2", "--timeout", "1e-6", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stopped"] == "timeout"
    assert "resuming study 'search' in sqlite:///" in captured.err and "1 of 2 trials finished" in captured.err


def test_parameters_of_parts_that_are_gone_are_not_sampled() -> None:
    space = load_search(Path(__file__).resolve().parents[1] / "search" / "digits.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    halo = {"stages.*.blocks.*.mixer.halo_size", "stages.*.blocks.*.mixer.block_size"}
    seen = set()
    for _ in range(40):
        trial = study.ask()
        spec = resolve(space, trial)
        mixers = [b.mixer.type for s in spec.stages for b in s.blocks]
        conv_stages = trial.params["conv_stages"]
        seen.add(conv_stages)
        # the base has halo mixers in stages 0 and 1 only: from conv_stages=2 on there is none to tune
        assert (halo <= set(trial.params)) == ("halo" in mixers) == (conv_stages < 2), (conv_stages, trial.params)
        assert ("stages.*.blocks.*.mixer.kernel_size" in trial.params) == (conv_stages > 0)
        study.tell(trial, 0.5)
    assert seen == {0, 1, 2, 3}


def test_the_progress_line_says_when_the_timeout_will_stop_new_trials(tmp_path: Path) -> None:
    import io

    from archdsl.search.report.progress import Progress

    space = load_search(write_search(tmp_path))
    study = optuna.create_study(direction="maximize")
    stream = io.StringIO()
    progress = Progress(space, 5, study, stream, deadline=time.monotonic() + 90)
    progress.start -= 120  # the first trial took two minutes: four more need eight, the clock has 1.5 left
    dist = {"train.optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 5e-3, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"train.optimizer.lr": 2e-3}, distributions=dist, value=0.5))
    progress.update(study)
    line = stream.getvalue()
    assert line.startswith("[1/5] trial 0 complete val/acc=0.5")
    assert "ETA 8m00s (the timeout stops new trials in 1m2" in line


def test_short_labels_keep_the_part_of_the_path_that_tells_parameters_apart() -> None:
    from archdsl.search.report.labels import short_labels

    expected = {
        "conv_stages": "conv_stages",
        "stem.kernel_size": "stem.kernel_size",
        "stages.*.blocks.*.mixer.kernel_size": "mixer.kernel_size",
        "stages.*.blocks.*.mixer.halo_size": "halo_size",
        "stages.2.channels": "stage 2 channels",
        "stages.1.blocks.0.repeat": "stage 1 repeat",
        "train.optimizer.lr": "lr",
        "stages.0.blocks.0[halo].mixer.num_heads": "stage 0 [halo].mixer.num_heads",
        "stages.0.blocks.0[glob].mixer.num_heads": "stage 0 [glob].mixer.num_heads",
    }
    assert short_labels(list(expected)) == expected


def test_the_study_and_every_trial_record_the_library_versions(finished: tuple[Path, Path]) -> None:
    from importlib.metadata import version

    _, out = finished
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    expected = {name: version(name) for name in ("archdsl", "torch", "lightning", "optuna", "pydantic")}
    assert study.user_attrs["archdsl_versions"] == expected
    assert study.trials and all(t.user_attrs["versions"] == expected for t in study.trials)


def test_a_trial_is_planned_once_from_sampling_to_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve, the budget checks, the latency measurement and training share one plan of the trial's spec."""
    import archdsl.planner as planner

    text = SEARCH.replace("pruner:", "objectives: [{{metric: val/acc}}, {{metric: latency_ms}}]\npruner:")
    space = load_search(write_search(tmp_path, text, trials=1))
    planned: list[str] = []
    plan = planner._plan
    monkeypatch.setattr(planner, "_plan", lambda spec: planned.append(spec.name) or plan(spec))
    result = run_search(space, tmp_path / "out", progress=False)
    assert result.trials["complete"] == 1
    (trial,) = result.best
    assert trial.values[0] > 0 and trial.values[1] > 0  # trained, and its latency measured
    assert planned == ["tiny_base"]


def test_search_file_errors_point_at_the_offending_key_with_what_was_meant(tmp_path: Path) -> None:
    def only(param: str) -> str:
        lr = "  train.optimizer.lr: {{float: [1.0e-3, 5.0e-3], log: true}}"
        (line,) = _problems(write_search(tmp_path, SEARCH.replace(lr, param)))
        return line.removeprefix(f"{tmp_path}/search.yaml:")

    unknown = only("  train.optimizer.lr: {{float: [1.0e-3, 6.0e-3], lg: true}}")
    assert unknown.startswith("10:49: params.train.optimizer.lr.lg: unknown key 'lg' (did you mean 'log'?)")
    assert only("  train.optimizer.lr: {{float: [1.0e-3, 6.0e-3], log: yes}}").startswith(
        "10:54: params.train.optimizer.lr.log: must be a valid boolean, got 'yes'"
    )
    assert only("  train.optimizer.lr: {{flot: [1.0e-3, 6.0e-3]}}").endswith(
        "got the unknown kind 'flot' (did you mean 'float'?)"
    )
    assert only("  train.optimiser.lr: {{float: [1.0e-3, 6.0e-3]}}").endswith(
        "no such path in the base spec " + str(tmp_path / "base.yaml") + " (did you mean 'train.optimizer.lr'?)"
    )
    assert only("  stages.*.blocks.*.mixer.num_hedas: {{choice: [2, 4]}}").endswith(
        "(did you mean 'stages.*.blocks.*.mixer.num_heads'?)"
    )
    branch = SEARCH + (
        "  stages.1.blocks.0:\n"
        "    choice: {{halo: {{type: bottleneck, width: 8, mixer: {{type: halo, block_size: 2, num_heads: 2}}}}}}\n"
        "    params: {{halo: {{mixer.halo_sise: {{int: [1, 2]}}}}}}\n"
    )
    (line,) = _problems(write_search(tmp_path / "branch", branch))
    assert line.startswith(
        f"{tmp_path}/branch/search.yaml:13:21: params.stages.1.blocks.0.params.halo.mixer.halo_sise:"
    )
    assert line.endswith("(did you mean 'mixer.halo_size'?)")


def test_command_line_problems_name_the_option_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "base.yaml"
    spec.write_text(BASE.replace("epochs: 2", "epochs: 1"))
    out = tmp_path / "run"
    (out).mkdir()
    (out / "best.ckpt").write_bytes(b"")
    assert main(["train", str(spec), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("--out: ") and "already holds a training run" in line


PARAMS_ONLY = """\
base: base.yaml
objectives: [{{metric: params}}]
budget: {{trials: {trials}, max_params: {max_params}}}
sampler: {{name: random, seed: 0}}
params:
  stages.0.channels: {{int: [16, 64]}}
  train.optimizer.lr: {{float: [1.0e-3, 5.0e-3], log: true}}
"""


def test_a_budget_raised_in_the_file_continues_the_study_and_other_changes_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trials of a params-only search plan and finish in milliseconds: the budget's rules, without training."""

    def run(trials: int, max_params: int = 1_000_000, *extra: str) -> dict[str, Any]:
        write_search(tmp_path, PARAMS_ONLY.replace("{max_params}", str(max_params)), trials=trials)
        code = main(["search", str(tmp_path / "search.yaml"), "--out", str(tmp_path / "out"), "--json", *extra])
        captured = capsys.readouterr()
        result: dict[str, Any] = json.loads(captured.out.strip().splitlines()[-1]) if code == 0 else {}
        return {"code": code, "err": captured.err, **result}

    first = run(6)
    assert first["trials"]["complete"] == 6
    raised = run(10)
    assert raised["code"] == 0 and raised["study"] == first["study"] and raised["trials"]["complete"] == 10
    assert "resuming study 'search'" in raised["err"] and "10 of 10" not in raised["err"]
    changed = run(10, 500_000)
    assert changed["code"] == 2
    assert "budget.max_params: 1000000 -> 500000" in changed["err"] and "--new-study" in changed["err"]
    lowered = run(4)
    assert lowered["code"] == 0 and lowered["trials"]["complete"] == 10  # nothing ran, nothing was lost
    assert "already holds 10 finished trials, more than this run's budget of 4" in lowered["err"]
    # status counts against the budget the latest run was given, --trials included
    assert run(6, 1_000_000, "--trials", "12")["trials"]["complete"] == 12
    assert main(["status", str(tmp_path / "out"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["budget"], status["trials"]["finished"]) == (12, 12)


def test_set_fixes_values_for_every_trial_and_is_part_of_the_search(tmp_path: Path) -> None:
    fixed = SEARCH.replace("params:", "set: {{train.epochs: 1, stages.*.blocks.*.width: 4}}\nparams:")
    space = load_search(write_search(tmp_path, fixed))
    trial = FixedTrial(
        {
            "conv_stages": 0,
            "stages.*.blocks.*.mixer.num_heads": 2,
            "stages.0.blocks.0.mixer.halo_size": 1,
            "train.optimizer.lr": 2e-3,
        }
    )
    spec = resolve(space, trial)
    assert spec.train.epochs == 1 and [b.width for s in spec.stages for b in s.blocks] == [4, 4]
    assert space.fingerprint() != load_search(write_search(tmp_path / "plain", SEARCH)).fingerprint()
    (line,) = _problems(write_search(tmp_path / "bad", fixed.replace("train.epochs", "train.epocs")))
    assert line.startswith(f"{tmp_path}/bad/search.yaml:6:7: set.train.epocs: no such path in the base spec")
    assert line.endswith("(did you mean 'train.epochs'?)")
    with pytest.raises(ArchDSLError) as err:  # the base with its set values is a spec: its problems are located
        load_search(write_search(tmp_path / "neg", fixed.replace("train.epochs: 1", "train.epochs: -1")))
    (line,) = (str(p) for p in err.value.problems)
    assert line.startswith(f"{tmp_path}/neg/search.yaml:6:21: train.epochs: must be greater than or equal to 1")


def test_validate_warns_of_a_model_far_larger_than_its_training_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "big.yaml"
    wide = BASE.replace("channels: 32\n    stride: 2", "channels: 16384\n    stride: 2").replace(
        "width: 8", "width: 64"
    )
    spec.write_text(wide)
    assert main(["validate", str(spec)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok  {spec}: tiny_base")
    assert f"{spec}: warning: the model has " in captured.err
    assert "over 1,000x the 1,077 training images of train.data.name=digits" in captured.err
    assert main(["validate", str(ROOT / "specs" / "resnet50.yaml")]) == 0  # a zoo entry trains on nothing
    assert "warning" not in capsys.readouterr().err


def test_logging_settings_of_the_base_spec_keep_the_study() -> None:
    """Switching on MLflow or TensorBoard for the rest of a search changes no trial: same study; any other
    base change (here the epochs) is another search."""
    from archdsl.search.space.identity import differences, fingerprint, identity

    definition = {"base": "base.yaml", "budget": {"trials": 4}}
    plain = identity(definition, {"name": "m", "train": {"epochs": 2}})
    logged = {"epochs": 2, "loggers": ["csv", "mlflow"], "mlflow": {"experiment": "e"}}
    assert fingerprint(identity(definition, {"name": "m", "train": logged})) == fingerprint(plain)
    assert fingerprint(identity(definition, {"name": "m"})) == fingerprint(
        identity(definition, {"name": "m", "train": {"loggers": ["csv", "tensorboard"]}})
    )
    longer = identity(definition, {"name": "m", "train": {"epochs": 3, "loggers": ["csv"]}})
    assert differences(plain, longer) == ["base spec train.epochs: 2 -> 3"]
