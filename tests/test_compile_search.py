"""``train.compile`` in searches: one compile per trial and per process, a compiled module pickles (DDP spawns
it), and a compile error fails its trial as a ``compile`` fault while the search goes on.

The searches compile with ``aot_eager`` (``ARCHDSL_COMPILE_BACKEND``): dynamo traces each model whole with its
batch dimension dynamic and AOTAutograd builds its forward and backward graphs, exactly as with inductor, without
inductor's C++ code generation (tens of seconds per architecture on a 2-core CPU). Dynamo's guards, cache and
recompile limit, which made searches fail after a few trials, are the same for every backend; inductor itself is
covered by ``tests/test_train.py::test_compiled_training_matches_eager_and_keeps_plain_checkpoint_keys``.
"""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from archdsl.launch.run import run_search
from archdsl.search.faults import fault_of
from archdsl.search.space.load import load_search
from tests.test_search import write_search

BASE = """\
name: compiled_grid
input: {channels: 1, size: 8}
stem: {type: conv, channels: 8, kernel_size: 3}
stages:
  - channels: 8
    stride: 2
    blocks: [{type: bottleneck, width: 8, mixer: {type: conv, kernel_size: 3}}]
head: {type: classifier, num_classes: 4}
train: {epochs: 1, batch_size: 12, compile: true, optimizer: {lr: 3.0e-3}, data: {name: synthetic, num_samples: 40}}
"""
"""40 samples in batches of 12: the epoch ends on a short batch of 4 (validation and test: one batch of 10)."""

GRID = """\
base: base.yaml
budget: {{trials: {trials}}}
sampler: {{name: grid, seed: 0}}
pruner: {{name: none}}
workers: {{heartbeat_seconds: 1, grace_seconds: 3}}
params:
  stem.channels: {{choice: [8, 16]}}
  stages.0.stride: {{choice: [1, 2]}}
  stages.0.blocks.0:
    choice:
      conv: {{type: bottleneck, width: 8, mixer: {{type: conv, kernel_size: 3}}}}
      attention: {{type: bottleneck, width: 8, mixer: {{type: global_attention, num_heads: 2}}}}
      basic: {{type: basic}}
"""
"""2 x 2 x 3: twelve architectures."""


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.slow
def test_a_grid_of_twelve_compiled_architectures_runs_in_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve architectures, one worker process, ``train.compile: true``: every trial completes. Each fit starts
    dynamo afresh and compiles two graphs, training and evaluation: the short last batch and the final validation
    and test reuse them (without the reset the twelve trials' graphs of the one ``Backbone.forward`` hit dynamo's
    recompile limit within a few trials)."""
    monkeypatch.setenv("ARCHDSL_COMPILE_BACKEND", "aot_eager")
    graphs: list[int] = []
    reset = torch._dynamo.reset

    def counted_reset() -> None:  # the graphs the previous fit compiled, then dynamo's own reset
        graphs.append(int(torch._dynamo.utils.counters["stats"]["unique_graphs"]))
        reset()

    monkeypatch.setattr(torch._dynamo, "reset", counted_reset)
    path = write_search(tmp_path, GRID, trials=12, base=BASE)
    result = run_search(load_search(path), tmp_path / "out", progress=False)
    graphs.append(int(torch._dynamo.utils.counters["stats"]["unique_graphs"]))
    assert result.stopped == "budget" and result.exit_code == 0, result.reason
    trials = _study(tmp_path / "out").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 12
    # dynamo's counters add up over resets: one reset per fit, and each fit compiled a training and an evaluation graph
    assert [after - before for before, after in itertools.pairwise(graphs)] == [2] * 12


_FAILING = "archdsl_test_no_attention"


def _no_attention(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
    """A backend that cannot lower attention (softmax) and compiles everything else like ``aot_eager``."""
    if any("softmax" in str(node.target) or "attention" in str(node.target) for node in gm.graph.nodes):
        raise NotImplementedError("this backend has no lowering for attention")
    from torch._dynamo.backends.debugging import aot_eager

    return aot_eager(gm, example_inputs)


@pytest.mark.slow
def test_a_compile_error_fails_its_trial_and_the_search_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend fails on the attention architecture only: dynamo raises ``BackendCompilerFailed`` inside the
    trial, which fails as a ``compile`` fault with its error kept; the other trials train, the budget is met."""
    if _FAILING not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(_no_attention, name=_FAILING)
    monkeypatch.setenv("ARCHDSL_COMPILE_BACKEND", _FAILING)
    text = GRID.replace("  stem.channels: {{choice: [8, 16]}}\n  stages.0.stride: {{choice: [1, 2]}}\n", "")
    path = write_search(tmp_path, text, trials=3, base=BASE)
    result = run_search(load_search(path), tmp_path / "out", progress=False)
    assert result.stopped == "budget" and result.exit_code == 0, result.reason
    by_block = {t.params["stages.0.blocks.0"]: t for t in _study(tmp_path / "out").trials}
    assert {k: t.state for k, t in by_block.items()} == {
        "conv": TrialState.COMPLETE,
        "attention": TrialState.FAIL,
        "basic": TrialState.COMPLETE,
    }
    failed = by_block["attention"].user_attrs
    assert failed["fault"] == "compile"
    assert failed["error"].startswith("BackendCompilerFailed: backend='archdsl_test_no_attention' raised:")
    assert "this backend has no lowering for attention" in failed["error"]
    assert "bug" not in failed


def test_compiler_errors_are_compile_faults() -> None:
    """Dynamo's and inductor's errors, raised here or by a spawned rank, are ``compile`` faults; a model's own
    eager error stays a bug."""
    from torch._dynamo.exc import BackendCompilerFailed, FailOnRecompileLimitHit, Unsupported
    from torch._inductor.exc import CppCompileError
    from torch.multiprocessing import ProcessRaisedException

    assert fault_of(BackendCompilerFailed(_no_attention, NotImplementedError("no lowering"), None)) == "compile"
    assert fault_of(FailOnRecompileLimitHit("recompile_limit reached with fullgraph=True")) == "compile"
    assert fault_of(Unsupported("graph break")) == "compile"
    assert fault_of(CppCompileError(["g++"], "error: ...")) == "compile"
    rank = "Traceback (most recent call last):\n  ...\ntorch._dynamo.exc.Unsupported: Attempted to call function\n"
    assert fault_of(ProcessRaisedException(rank, 1, 123)) == "compile"
    assert fault_of(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None


def _module(compile: bool = True) -> Any:
    from archdsl.compiler.build import build_from_plan
    from archdsl.planner import plan_spec
    from archdsl.spec.load import spec_from_text, spec_to_data
    from archdsl.train.module import ClassificationModule

    text = BASE if compile else BASE.replace("compile: true", "compile: false")
    planned = plan_spec(spec_from_text(text, "base.yaml"))
    torch.manual_seed(0)
    return ClassificationModule(build_from_plan(planned.plan), spec_to_data(planned.spec))


def test_a_compiled_module_pickles_and_compiles_again_where_it_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that compiled its forward pickles (the compiled function stays behind); the copy computes the same
    and compiles its own forward when Lightning configures it in its process."""
    monkeypatch.setenv("ARCHDSL_COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]  # counted over the process's life
    module = _module().eval()
    module.configure_model()
    x = torch.randn(5, 1, 8, 8)
    before = graphs["unique_graphs"]
    with torch.no_grad():
        expected = module(x)
    assert module._compiled is not None and graphs["unique_graphs"] == before + 1
    copy = pickle.loads(pickle.dumps(module))
    assert copy._compiled is None and module._compiled is not None
    copy.configure_model()
    assert copy._compiled is not None
    with torch.no_grad():
        torch.testing.assert_close(copy(x), expected)
        before = graphs["unique_graphs"]
        torch.testing.assert_close(copy(x[:3]), expected[:3])
    assert graphs["unique_graphs"] == before  # another batch size, the same graph


def test_an_eager_module_never_compiles() -> None:
    module = _module(compile=False)
    module.configure_model()
    assert module._compiled is None


@pytest.mark.slow
def test_a_compiled_trial_trains_on_two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``train.compile`` with ``devices: 2``: the module is pickled into two spawned ranks, each compiles its own
    forward (the compiled function used to fail the spawn: it does not pickle)."""
    from archdsl.planner import plan_spec
    from archdsl.spec.load import spec_from_text
    from archdsl.train.fit import fit

    monkeypatch.setenv("ARCHDSL_COMPILE_BACKEND", "aot_eager")
    text = BASE.replace("batch_size: 12, compile: true", "batch_size: 12, compile: true, devices: 2, accelerator: cpu")
    result = fit(plan_spec(spec_from_text(text, "ddp.yaml")), tmp_path / "run", progress=False, test=False)
    assert result.epochs == 1 and 0.0 <= result.val_acc <= 1.0
