"""Which errors of a trial are the trial's own, and which are bugs.

A search must survive its trials: a learning rate that diverges, a model that does not fit in the
device's memory, a device or disk that fails, a model ``torch.compile`` cannot compile. Such a **training
fault** fails its trial (the error and a short traceback kept in its user attributes) and the search goes on.
Any other exception (a ``TypeError``, a ``KeyError``, a shape mismatch inside a planned model) is a bug in
archdsl, or in code a spec imports: it would fail every trial the same way, so it stops the search with its
traceback instead of burning the budget (:class:`TrialBug`).

The faults are a registry, in order; the first whose test holds names the fault.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from dataclasses import dataclass

from archdsl.errors import ArchDSLError

__all__ = ["FAULTS", "STICKY", "DeviceLost", "Fault", "TrialBug", "TrialFault", "describe", "fault_of"]


@dataclass(frozen=True)
class Fault:
    name: str
    """What the trial's ``fault`` user attribute says."""
    holds: Callable[[BaseException], bool]


def _torch_error(module: str, name: str) -> type[BaseException] | None:
    """A torch exception class, without importing torch (planning-only searches never load it)."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _is(module: str, name: str) -> Callable[[BaseException], bool]:
    def holds(err: BaseException) -> bool:
        cls = _torch_error(module, name)
        return cls is not None and isinstance(err, cls)

    return holds


_DEVICE_MARKERS = ("CUDA error", "cuDNN error", "CUBLAS_STATUS", "CUDNN_STATUS", "NCCL", "HIP error", "MPS backend")
"""Device failures torch reports as a plain ``RuntimeError`` (older releases, collective ops, cuBLAS/cuDNN)."""

_LOADER_MARKERS = ("DataLoader worker", "unable to open shared memory", "Too many open files")
"""The data-loading processes died or the host ran out of shared memory or file handles."""


_SPAWNED = _is("torch.multiprocessing", "ProcessRaisedException")
"""A multi-device trial's rank raised: the parent sees its traceback as text (``ddp_spawn``)."""


def _says(markers: tuple[str, ...]) -> Callable[[BaseException], bool]:
    """A ``RuntimeError`` (or a spawned rank's error) whose message carries one of ``markers``."""

    def holds(err: BaseException) -> bool:
        return (isinstance(err, RuntimeError) or _SPAWNED(err)) and any(m in str(err) for m in markers)

    return holds


def _rank_raised_ours(err: BaseException) -> bool:
    """A spawned rank raised one of archdsl's own errors (its loss turned non-finite, a located problem): the
    traceback's last line names the class with its module."""
    text = str(err).strip()
    return _SPAWNED(err) and bool(text) and text.splitlines()[-1].startswith("archdsl.")


_COMPILERS = ("torch._dynamo", "torch._inductor")
"""The packages of ``torch.compile``: their errors are the compiler's, for this trial's graph."""


def _compile_error(err: BaseException) -> bool:
    """``torch.compile`` failed on the trial's model: dynamo could not trace it whole (``Unsupported``), a backend
    failed (``BackendCompilerFailed``, ``InductorError``, a C++ or Triton build), a guard kept failing
    (``FailOnRecompileLimitHit``); or a spawned rank raised one of these."""
    if any(cls.__module__.startswith(_COMPILERS) for cls in type(err).__mro__):
        return True
    return _SPAWNED(err) and any(line.startswith(_COMPILERS) for line in str(err).splitlines())


def _out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError) or _is("torch", "OutOfMemoryError")(err):
        return True
    return _says(("out of memory", "OutOfMemoryError"))(err)  # torch before 2.5, MPS, XPU, a spawned rank


def _host_io(err: BaseException) -> bool:
    """The host's trouble, not the code's (:data:`_HOST_ERRNOS`)."""
    return isinstance(err, OSError) and err.errno in _HOST_ERRNOS


_HOST_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ESTALE, errno.EROFS, errno.EMFILE, errno.ENFILE)
"""Disk or quota full, an I/O error, a stale network-filesystem handle, a read-only remount, no file handles."""


FAULTS: tuple[Fault, ...] = (
    Fault("training", lambda err: isinstance(err, ArchDSLError)),  # a located reason: loss NaN, data missing, ...
    Fault("training", _rank_raised_ours),
    Fault("out of memory", _out_of_memory),
    Fault("device", _is("torch", "AcceleratorError")),
    Fault("device", _is("torch.distributed", "DistError")),  # a collective failed: NCCL/Gloo, a rank's network
    Fault("device", _says(_DEVICE_MARKERS)),
    Fault("killed rank", _is("torch.multiprocessing", "ProcessExitedException")),  # e.g. the kernel's OOM killer
    Fault("compile", _compile_error),  # after memory and device faults, which a compiler error may wrap
    Fault("data loading", _says(_LOADER_MARKERS)),
    Fault("host i/o", _host_io),
)


def fault_of(err: BaseException) -> str | None:
    """The training fault ``err`` is, or None: a bug."""
    return next((f.name for f in FAULTS if f.holds(err)), None)


def describe(err: BaseException) -> str:
    """``Type: message`` for one line of a reason, the message cut at 300 characters."""
    return f"{type(err).__name__}: {str(err)[:300]}"


class TrialFault(Exception):
    """A trial failed for a reason of its own (:data:`FAULTS`); the search records it and goes on."""

    def __init__(self, fault: str, error: BaseException) -> None:
        super().__init__(f"{fault}: {describe(error)}")


STICKY = ("device",)
"""Faults that may leave the process unusable (a CUDA context after an illegal access, an aborted NCCL
communicator): the trial's parameters are queued again and the worker exits for a fresh process."""


class DeviceLost(Exception):
    """A trial hit a device fault that may poison this process; the worker stops (exit 75) to be restarted."""

    def __init__(self, number: int, error: BaseException) -> None:
        super().__init__(f"trial {number}: {describe(error)}")
        self.number, self.error = number, error


class TrialBug(Exception):
    """A trial raised an error that is no training fault; the search stops and shows its traceback."""

    def __init__(self, number: int, error: BaseException) -> None:
        super().__init__(f"trial {number}: {describe(error)}")
        self.number, self.error = number, error
