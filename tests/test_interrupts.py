"""Ctrl-C while a command starts is never lost: recorded, then handled at the command's first safe point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archdsl.train.preempt import PreemptionGuard, StartupInterrupts
from tests.test_search import write_search


def test_a_ctrl_c_while_starting_is_recorded_and_raised_at_release() -> None:
    startup = StartupInterrupts()
    startup.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread before kill returns to Python code
        assert startup.pending
        assert signal.getsignal(signal.SIGINT) == startup._hard_stop  # a second one ends the process at once
        with pytest.raises(KeyboardInterrupt):
            startup.release()
        startup.release()  # once only
    finally:
        startup.uninstall()


def test_a_guard_takes_over_the_ctrl_c_of_the_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import archdsl.train.preempt as preempt

    startup = StartupInterrupts()
    monkeypatch.setattr(preempt, "STARTUP", startup)
    startup.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        with PreemptionGuard() as guard:
            assert guard.requested.is_set() and guard.reason == "interrupted"
        assert not startup.pending
    finally:
        startup.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _search(tmp_path: Path) -> subprocess.Popen[str]:
    """``archdsl search`` of a 6-trial study, started now."""
    search = write_search(tmp_path, trials=6)
    return subprocess.Popen(
        [sys.executable, "-m", "archdsl", "search", str(search), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.6, 1.2, 2.5, 4.0])
def test_a_search_interrupted_while_it_starts_stops(tmp_path: Path, after: float) -> None:
    """The chaos test's lost Ctrl-C (1.2 s after the start, the search ran its whole budget): at each of these
    moments of start-up the search ends with 130 (or -2 while the interpreter still imports), no trial finished."""
    proc = _search(tmp_path)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err[-2000:])
    assert "Traceback" not in err or proc.returncode == -signal.SIGINT
    assert "stopped: budget" not in out and "complete 6" not in err


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.3, 1.0, 2.0])
def test_a_second_ctrl_c_while_starting_ends_the_process_as_sigint_does(tmp_path: Path, after: float) -> None:
    """Ctrl-C twice in start-up: the second ends the process with SIGINT's default action (-2), or 130 once the
    search's guard has taken over. Raised as ``KeyboardInterrupt`` it once landed in a C++ callback of torch's
    import and aborted the interpreter (-6, ``terminate called after throwing ... KeyboardInterrupt``)."""
    proc = _search(tmp_path)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err[-2000:])
    assert "terminate called" not in err
