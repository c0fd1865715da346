"""``budget.latency``: latency timed in the runtime a deployment runs (eager, ONNX Runtime, torch.export), recorded
with its settings; a runtime or device the worker cannot time in is refused at its line of the search file."""

from __future__ import annotations

import importlib.util
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import archdsl
from archdsl.compiler.build import build_from_plan
from archdsl.compiler.latency import measure_latency
from archdsl.compiler.runtimes import RUNTIMES
from archdsl.errors import SearchError
from archdsl.launch.run import run_search
from archdsl.search.record import TrialRecord
from archdsl.search.space.definition import RUNTIME_NAMES
from archdsl.search.space.load import load_search, search_from_text
from tests.test_search import BASE, ROOT, SEARCH, write_search

ORT_SETTINGS = {"runtime": "onnxruntime", "device": "cpu", "batch": 1, "threads": 1, "warmup": 3, "repeats": 10}
SLOW_MS = 25.0
"""Added to every timed ONNX Runtime run in the counting test: far above the tiny model's own time."""


def _latency_search(latency: str, trials: int = 1) -> str:
    """tests.test_search's SEARCH, trained for nothing: latency_ms is the one objective, timed as ``latency``."""
    budget = f"budget:\n  trials: {trials}\n  latency: {latency}\n"
    text = SEARCH.replace("budget: {{trials: {trials}}}\n", budget.replace("{", "{{").replace("}", "}}"))
    return text.replace("pruner:", "objectives: [{{metric: latency_ms, direction: minimize}}]\npruner:")


def _records(out: Path) -> list[TrialRecord]:
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    return [TrialRecord.of(t) for t in study.trials]


def test_the_registry_holds_the_runtimes_a_search_file_names() -> None:
    assert RUNTIMES.names() == RUNTIME_NAMES == ("eager", "onnxruntime", "torch_export")


def test_onnxruntime_latency_is_timed_in_real_onnxruntime_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial's latency_ms comes from ONNX Runtime: one real session per trial, opened with the threads asked
    for, run warmup + repeats times; every run is slowed by SLOW_MS, and the recorded figure carries it."""
    ort = pytest.importorskip("onnxruntime")
    sessions: list[dict[str, int]] = []

    class Counting(ort.InferenceSession):  # type: ignore[misc,name-defined]
        def __init__(self, model: Any, options: Any = None, *args: Any, **kwargs: Any) -> None:
            super().__init__(model, options, *args, **kwargs)
            threads = (options.intra_op_num_threads, options.inter_op_num_threads) if options is not None else None
            sessions.append({"runs": 0, "threads": threads, "in_memory": isinstance(model, bytes)})

        def run(self, *args: Any, **kwargs: Any) -> Any:
            sessions[-1]["runs"] += 1
            time.sleep(SLOW_MS / 1e3)
            return super().run(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Counting)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # no ONNX file may be left in it
    (tmp_path / "tmp").mkdir()
    space = load_search(write_search(tmp_path, _latency_search("{runtime: onnxruntime, device: cpu, threads: 1}")))
    result = run_search(space, tmp_path / "out", progress=False)
    assert result.tally.finished == 1
    assert sessions == [{"runs": 3 + 10, "threads": (1, 1), "in_memory": True}]
    (record,) = _records(tmp_path / "out")
    assert dict(record.latency_timing) == ORT_SETTINGS
    assert record.latency_ms is not None and record.latency_ms >= SLOW_MS
    assert result.best[0].values == [record.latency_ms]
    assert [p for p in (tmp_path / "tmp").iterdir() if p.name != "torchinductor_root"] == []  # torch's own cache
    assert list(tmp_path.rglob("*.onnx*")) == []


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_a_latency_search_of_the_digits_space_ranks_onnxruntime_timings(tmp_path: Path) -> None:
    """The digits search, minimising latency_ms timed in ONNX Runtime: nothing is trained, every trial records the
    runtime it was timed in, and the best trial is the fastest."""
    text = (ROOT / "search" / "digits.yaml").read_text()
    text = text.replace("objectives: [{metric: val/acc, direction: maximize}]", "objectives: [{metric: latency_ms}]")
    text = text.replace(
        "budget: {trials: 30, timeout_minutes: 19, max_params: 2_000_000}",
        "budget: {trials: 3, max_params: 2_000_000, latency: {runtime: onnxruntime, threads: 1}}",
    )
    text = text.replace("sampler: {name: tpe, seed: 0, startup_trials: 8}", "sampler: {name: random, seed: 0}")
    space = search_from_text(text, "digits.yaml", ROOT / "search")
    assert space.definition.budget.latency.runtime == "onnxruntime"
    result = run_search(space, tmp_path / "out", progress=False, study_name="search")
    records = _records(tmp_path / "out")
    assert len(records) == 3 and all(r.outcome == "complete" for r in records)
    assert all(r.latency_timing["runtime"] == "onnxruntime" and r.latency_timing["threads"] == 1 for r in records)
    assert all(r.epochs is None and r.checkpoint is None for r in records)  # untrained
    fastest = min(records, key=lambda r: r.latency_ms or math.inf)
    assert result.best[0].number == fastest.number


def test_torch_export_times_the_exported_program_and_it_computes_what_eager_does() -> None:
    spec = archdsl.spec_from_text(BASE)
    plan = archdsl.plan_model(spec)
    torch.manual_seed(0)
    model = build_from_plan(plan, "cpu").eval()
    before = torch.get_num_threads()
    timing = measure_latency(model, tuple(plan.input), "torch_export", batch=3, threads=1)
    assert math.isfinite(timing.ms) and timing.ms > 0
    assert timing.settings() == {**ORT_SETTINGS, "runtime": "torch_export", "batch": 3}
    assert torch.get_num_threads() == before and not model.training  # as they were
    x = torch.randn(3, *plan.input)
    with torch.no_grad():
        exported = RUNTIMES.get("torch_export").prepare(model, x, 1)()
        torch.testing.assert_close(exported, model(x), rtol=0, atol=1e-5)
        if importlib.util.find_spec("onnxruntime") is not None:
            onnx = RUNTIMES.get("onnxruntime").prepare(model, x, 1)()
            torch.testing.assert_close(onnx, model(x), rtol=0, atol=1e-4)


def _problems(path: Path, out: Path) -> list[str]:
    with pytest.raises(SearchError) as err:
        run_search(load_search(path), out, progress=False)
    assert not out.exists()  # refused before any study or directory
    return [str(p) for p in err.value.problems]


def test_a_runtime_or_device_the_worker_cannot_time_in_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_search(tmp_path, _latency_search("{runtime: onnx, threads: 1}"))
    with pytest.raises(SearchError) as err:
        load_search(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:4:22: budget.latency.runtime: unknown value 'onnx' (did you mean 'onnxruntime'?); "
        "expected one of: eager, onnxruntime, torch_export"
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = write_search(tmp_path, _latency_search("{runtime: torch_export, device: cuda}"))
    assert _problems(path, tmp_path / "out") == [
        f"{path}:4:44: budget.latency.device: cuda needs a CUDA device torch can use; this torch "
        f"({torch.__version__}) sees none: time on the CPU (device: cpu), or run the search where there is a GPU"
    ]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    path = write_search(tmp_path, _latency_search("{runtime: onnxruntime}"))
    assert _problems(path, tmp_path / "out") == [
        f"{path}:4:22: budget.latency.runtime: onnxruntime needs the Python package onnxruntime, which is not "
        "installed (pip install onnxruntime)"
    ]


def test_budget_latency_where_nothing_measures_latency_is_refused(tmp_path: Path) -> None:
    text = SEARCH.replace("budget: {{trials: {trials}}}", "budget: {{trials: {trials}, latency: {{threads: 1}}}}")
    path = write_search(tmp_path, text)
    with pytest.raises(SearchError) as err:
        load_search(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:2:21: budget.latency: says how latency_ms is measured, but nothing measures it: add "
        "budget.max_latency_ms or the objective {metric: latency_ms}, or drop budget.latency"
    ]
