"""Stopping a run on request: SIGTERM (what SLURM and Kubernetes send before they kill) and Ctrl-C.

Raising from a signal handler can land anywhere, even in a garbage-collector callback where Python
ignores the exception, so :class:`PreemptionGuard` only records the request; code checks it at safe
points (between trials, before training) and, through :meth:`PreemptionGuard.callback`, at the end of
every training and validation batch. A second Ctrl-C raises ``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["STARTUP", "Preempted", "PreemptionGuard", "StartupInterrupts", "StopRequested"]

_REASONS = {signal.SIGTERM: "preempted", signal.SIGINT: "interrupted"}


class Preempted(KeyboardInterrupt):
    """The process was asked to stop: what it was doing is handed back, not failed.

    ``reason`` is ``preempted`` (SIGTERM) or ``interrupted`` (Ctrl-C). A ``KeyboardInterrupt`` subclass,
    so Optuna marks the running trial FAIL and lets the exception through.
    """

    def __init__(self, reason: str = "preempted") -> None:
        super().__init__(reason)
        self.reason = reason


class StopRequested(BaseException):
    """Raised inside Lightning's loops (which re-raise it untouched); :func:`archdsl.train.fit.fit` turns it
    into :class:`Preempted`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StartupInterrupts:
    """A Ctrl-C while a command starts (imports, opening the study) is recorded, not raised: raised there, a
    ``KeyboardInterrupt`` can land in a library's bare ``except:`` or a finaliser and be lost, and the command runs
    to its end. The command takes the request over at its first safe point: a :class:`PreemptionGuard` when it
    is entered, else :meth:`release` (raises ``KeyboardInterrupt``). A second Ctrl-C before that ends the process
    at once, as SIGINT's default action does (exit -2): raised as ``KeyboardInterrupt`` inside torch's import it
    went through a C++ callback and aborted the interpreter (``terminate called ... KeyboardInterrupt``, -6)."""

    def __init__(self) -> None:
        self.pending = False
        self._installed = False

    def install(self) -> None:
        """Record Ctrl-C from now on (only over Python's default handler, in the main thread)."""
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._record)
            self._installed = True

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        signal.signal(signal.SIGINT, self._hard_stop)

    @staticmethod
    def _hard_stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)

    def take(self) -> bool:
        """Whether a Ctrl-C was recorded (and forget it)."""
        pending, self.pending = self.pending, False
        return pending

    def uninstall(self) -> None:
        """Python's default handler again, if this one is still in place."""
        if self._installed and signal.getsignal(signal.SIGINT) in (self._record, self._hard_stop):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._installed = False

    def release(self) -> None:
        """Hand Ctrl-C back to Python; raise ``KeyboardInterrupt`` if one was recorded."""
        self.uninstall()
        if self.take():
            raise KeyboardInterrupt


STARTUP = StartupInterrupts()
"""The process's start-up recorder (``archdsl.cli.main`` installs it)."""


class PreemptionGuard:
    """``with PreemptionGuard() as guard:`` SIGTERM and SIGINT set ``guard.reason``; ``guard.check()`` raises."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _REASONS:
                self._previous[signum] = signal.signal(signum, self._handle)
            if STARTUP.take():  # a Ctrl-C while the command started: handled here, the first safe point
                self._handle(signal.SIGINT, None)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is None:
            self.reason = _REASONS[signal.Signals(signum)]
        self.requested.set()
        if signum == signal.SIGINT:  # the next Ctrl-C interrupts at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def check(self) -> None:
        """Raise :class:`Preempted` if a stop was requested."""
        if self.requested.is_set():
            raise Preempted(self.reason or "preempted")

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; raise :class:`Preempted` as soon as a stop is requested."""
        if self.requested.wait(seconds):
            self.check()
