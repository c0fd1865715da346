"""SIGTERM as preemption: what SLURM and Kubernetes send a process before they kill it.

:class:`PreemptionGuard` turns SIGTERM into a flag for the duration of a block; code checks it at safe
points (between trials, before training) and raises :class:`Preempted`. During ``trainer.fit`` Lightning
composes the guard's handler with its own and stops at the next batch with ``SIGTERMException``, which
:func:`archdsl.train.fit.fit` turns into :class:`Preempted` too.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Preempted", "PreemptionGuard"]


class Preempted(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM); what it was doing must be handed back, not failed.

    A ``KeyboardInterrupt`` subclass, so Optuna marks the running trial FAIL and lets it propagate.
    """


class PreemptionGuard:
    """``with PreemptionGuard() as guard:`` SIGTERM sets ``guard.requested``; ``guard.check()`` raises."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested.set()

    def check(self) -> None:
        """Raise :class:`Preempted` if SIGTERM has arrived."""
        if self.requested.is_set():
            raise Preempted("SIGTERM received")

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; raise :class:`Preempted` as soon as SIGTERM arrives."""
        if self.requested.wait(seconds):
            self.check()
