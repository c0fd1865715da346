"""Trial faults and bugs: a trial that diverges, runs out of memory or hits a device, data-loading or disk
error fails with its reason and the search goes on (up to ``workers.max_failures_in_a_row``); any other
exception is a bug and stops the search with its traceback, its parameters queued for the run after the fix."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archdsl.cli import main
from archdsl.launch.run import run_search
from archdsl.search.budget import retry_history
from archdsl.search.space.load import load_search
from tests.test_search import BASE, SEARCH, write_search


def test_trials_failing_in_a_row_stop_the_search_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archdsl.cli import main

    base = BASE.replace("data: {name: digits, augment: false}", f"data: {{name: image_folder, root: {tmp_path}/none}}")
    text = SEARCH.replace("grace_seconds: 3}}", "grace_seconds: 3, max_failures_in_a_row: 4}}")
    path = write_search(tmp_path, text, trials=6, base=base.replace("channels: 1,", "channels: 3,"))
    assert main(["search", str(path), "--out", str(tmp_path / "out"), "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["stopped"] == "failures" and summary["trials"]["fail"] == 4
    assert (
        "search stopped (failures): 4 trials in a row failed on this worker (trials 0, 1, 2, 3; "
        f"workers.max_failures_in_a_row is 4); the last: {tmp_path / 'base.yaml'}:12:95: train.data.root: "
        in captured.err
    )


def test_a_failed_trial_keeps_its_error_and_a_short_traceback() -> None:
    from archdsl.search.objective import Objective

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB" + "!" * 10_000)
        deep(n - 1)

    study = optuna.create_study()
    trial = study.ask()
    try:
        deep(30)
    except RuntimeError as err:
        Objective._record_error(trial, err)
    attrs = study.trials[0].user_attrs
    assert attrs["error"].startswith("RuntimeError: CUDA out of memory.") and len(attrs["error"]) <= 4000
    tb = attrs["traceback"]
    # the innermost 8 frames (Python folds the repeated ones), not the outer ones; the message cut
    assert 'raise RuntimeError("CUDA' in tb and "test_a_failed_trial" not in tb and len(tb) <= 4000
    assert "RuntimeError: CUDA out of memory" in tb


def test_a_diverging_trial_fails_at_once_with_its_reason_and_is_not_retried(tmp_path: Path) -> None:
    """A loss that turns NaN fails its trial at the step it happens (not at the next validation); the trial
    is not queued again with the same parameters, and a study whose trials all diverge stops on its
    failure budget (exit 1) instead of running on."""
    base = BASE.replace("optimizer: {lr: 3.0e-3}", "optimizer: {name: sgd, lr: 1.0e+30}")
    text = SEARCH.replace("  train.optimizer.lr: {{float: [1.0e-3, 5.0e-3], log: true}}\n", "")
    text = text.replace("grace_seconds: 3}}", "grace_seconds: 3, max_failures_in_a_row: 3}}")
    path = write_search(tmp_path, text, trials=2, base=base)
    out = tmp_path / "out"
    assert main(["search", str(path), "--out", str(out), "--json"]) == 1
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    for t in study.trials:
        assert "training stopped: loss is nan at epoch 0, step " in t.user_attrs["error"]
        kept = out / "trials" / f"{t.number:04d}" / "last.ckpt"  # the weights before step 1: trials keep last.ckpt
        assert f"the last good checkpoint is kept at {kept.resolve()}" in t.user_attrs["error"] and kept.is_file()
        assert retry_history(t) == [] and "retry" not in str(t.system_attrs)  # not queued again


def test_an_out_of_memory_trial_fails_with_its_error_and_is_not_retried_in_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CUDA out-of-memory error (simulated: this machine has no GPU) fails the trial with the error and a
    short traceback; the same parameters are not queued again, and ten in a row (the default
    ``workers.max_failures_in_a_row``) stop the search."""
    import torch

    import archdsl.train.fit as fit_module

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.19 GiB total)")

    monkeypatch.setattr(fit_module, "fit", out_of_memory)
    path = write_search(tmp_path, trials=12)
    result = run_search(load_search(path), tmp_path / "out", progress=False)
    assert result.stopped == "failures" and result.exit_code == 1
    assert "10 trials in a row failed" in result.reason
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 10
    for t in study.trials:
        assert t.user_attrs["error"].startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB")
        assert t.user_attrs["fault"] == "out of memory" and "bug" not in t.user_attrs
        assert "raise torch.OutOfMemoryError" in t.user_attrs["traceback"]
        assert retry_history(t) == []


def _raise(error: BaseException) -> None:
    raise error


def _rank_raised(last_line: str) -> BaseException:
    """What ``ddp_spawn`` raises in the parent when a rank raised: the rank's traceback as text."""
    import torch

    text = f"-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n  ...\n{last_line}"
    return torch.multiprocessing.ProcessRaisedException(text, 1, 77)


def _torch_errors() -> list[tuple[BaseException, str | None]]:
    import errno

    import torch

    from archdsl.errors import Problem
    from archdsl.train.fit import TrainingError

    return [
        (TrainingError(Problem("train.optimizer.lr", "training stopped: loss is nan")), "training"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),  # torch before 2.5
        (MemoryError(), "out of memory"),
        (torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), "device"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"), "device"),
        (RuntimeError("NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error"), "device"),
        (RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed."), "data loading"),
        (OSError(errno.ENOSPC, "No space left on device"), "host i/o"),
        (torch.distributed.DistBackendError("NCCL communicator was aborted on rank 1"), "device"),
        (torch.multiprocessing.ProcessExitedException("rank 1 killed", 1, 77, -9, "SIGKILL"), "killed rank"),
        (_rank_raised("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
        (_rank_raised("archdsl.train.module.NonFiniteLossError: loss is nan at epoch 0, step 3"), "training"),
        (OSError(errno.EMFILE, "Too many open files"), "host i/o"),
        (_rank_raised("KeyError: 'stages'"), None),  # a rank's bug is a bug
        # bugs: they would fail every trial the same way
        (TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'"), None),
        (KeyError("stages"), None),
        (IndexError("list index out of range"), None),
        (AttributeError("'NoneType' object has no attribute 'channels'"), None),
        (ZeroDivisionError("division by zero"), None),
        (ValueError("not enough values to unpack"), None),
        (NotImplementedError(), None),
        (AssertionError(), None),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 16x10)"), None),  # planned shapes lied
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "trials/0003/best.ckpt"), None),
    ]


def test_training_faults_are_told_from_bugs() -> None:
    from archdsl.search.faults import fault_of

    for error, fault in _torch_errors():
        assert fault_of(error) == fault, error


def test_a_bug_stops_the_search_with_its_traceback_and_the_rerun_after_the_fix_retries_its_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error that is no training fault would fail every trial the same way: the first stops the search
    (exit 1) with the traceback, instead of counting towards the failure budget; nothing of the budget is
    spent, and the trial's parameters run first once the bug is gone."""
    import archdsl.train.fit as fit_module

    real_fit = fit_module.fit

    def buggy_fit(*args: object, **kwargs: object) -> None:
        _raise(TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'"))

    monkeypatch.setattr(fit_module, "fit", buggy_fit)
    path = write_search(tmp_path, trials=2)
    out = tmp_path / "out"
    assert main(["search", str(path), "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stopped"] == "bug"
    assert "Traceback (most recent call last)" in captured.err and "in buggy_fit" in captured.err
    assert (
        "search stopped (bug): trial 0 raised TypeError: unsupported operand type(s) for +: 'int' and 'NoneType', "
        "which is no training fault" in captured.err
    )
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name="search", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    failed = study.trials[0]
    assert failed.user_attrs["bug"] is True and "fault" not in failed.user_attrs
    assert failed.user_attrs["reason"] == (  # what the progress line and the report show
        "a bug, not a training fault: TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'"
    )
    assert "in buggy_fit" in failed.user_attrs["traceback"]

    monkeypatch.setattr(fit_module, "fit", real_fit)  # the fix
    assert main(["search", str(path), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == {"complete": 2, "pruned": 0, "rejected": 0, "fail": 0}
    study = optuna.load_study(study_name="search", storage=storage)
    retried = study.trials[1]
    assert retried.state == TrialState.COMPLETE and retry_history(retried) == [0]
    assert retried.params == failed.params


def test_a_spawned_ranks_own_error_is_a_training_fault() -> None:
    """``ddp_spawn`` gives the parent a rank's error as its traceback text only (a real spawn here); one of
    archdsl's errors (a rank's loss turning NaN raises ``archdsl.train.module.NonFiniteLossError``) is named
    with its module on the last line."""
    import torch.multiprocessing as mp

    from archdsl.search.faults import fault_of
    from tests.ranks import raise_archdsl_error

    with pytest.raises(mp.ProcessRaisedException) as raised:
        mp.start_processes(raise_archdsl_error, nprocs=2, start_method="spawn")
    assert str(raised.value).strip().splitlines()[-1].startswith("archdsl.errors.SpecError: train.optimizer.lr: ")
    assert fault_of(raised.value) == "training"


def test_a_sticky_device_fault_queues_the_trial_again_and_the_worker_exits_75(tmp_path: Path) -> None:
    """A device error that may poison the process (here the text of a CUDA illegal memory access, raised by a
    user data module in the first process only): the trial is handed back once, the worker exits 75 before
    another trial can fail in the same process, and the next worker (a fresh process) runs those parameters."""
    import os
    import subprocess
    import sys

    from archdsl.search import DEVICE_LOST_EXIT
    from archdsl.search.record import TrialRecord, outcome

    data = f"{{name: custom, target: 'tests.device_fault_data:DeviceFaultOnce', kwargs: {{marker: {tmp_path}/m}}}}"
    path = write_search(tmp_path, trials=2, base=BASE.replace("{name: digits, augment: false}", data))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = [sys.executable, "-m", "archdsl", "worker", str(path), "--storage", storage, "--allow-import"]
    argv += ["--out", str(tmp_path / "out"), "--json"]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert first.returncode == DEVICE_LOST_EXIT == 75, first.stderr[-2000:]
    assert json.loads(first.stdout)["stopped"] == "device"
    assert "hit a device fault (RuntimeError: CUDA error: an illegal memory access" in first.stderr
    lost, queued = optuna.load_study(study_name="search", storage=storage).trials  # nothing else ran
    assert queued.state == TrialState.WAITING and queued.params == lost.params
    assert outcome(lost) == "fault" and "queued again for a fresh worker process" in lost.user_attrs["reason"]
    second = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    trials = optuna.load_study(study_name="search", storage=storage).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and len(trials) == 3
    (retry,) = [t for t in done if TrialRecord.of(t).retry_of]
    assert retry.params == lost.params and TrialRecord.of(retry).retry_of[-1] == lost.number
