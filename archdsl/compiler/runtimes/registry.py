"""The runtime table: name -> :class:`Runtime`. A runtime kind registers itself when its module is imported.

A runtime turns a built model (eval mode, on its device) and a fixed input into a :data:`Runner`, one inference
per call, the way a deployment runs the model: eager PyTorch, or an exported program in its own runtime.
:func:`archdsl.compiler.latency.measure_latency` times runners.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from archdsl.registry import Registry

__all__ = ["RUNTIMES", "Runner", "Runtime", "available", "register"]

Runner = Callable[[], torch.Tensor]
"""One inference of the fixed input; returns the output as a torch tensor (on the CPU for ONNX Runtime)."""


def available(device: str) -> str | None:
    """Nothing is missing: the runtime needs torch alone."""
    return None


@dataclass(frozen=True)
class Runtime:
    """One way of running a model that latency can be timed in."""

    name: str
    summary: str
    """One line: what runs, and what it is in a deployment."""
    prepare: Callable[[nn.Module, torch.Tensor, int], Runner]
    """``prepare(model, x, threads)``: export the model (eval mode, on ``x``'s device) if the runtime runs a
    program, and return the runner of input ``x`` with ``threads`` intra-op threads set in the runtime itself (the
    caller has set ``torch.set_num_threads`` for the duration)."""
    missing: Callable[[str], str | None] = available
    """``missing(device)``: why this Python cannot run it on ``device`` (``cpu`` or ``cuda``), say a package that
    is not installed, as the end of a sentence; None when it can. CUDA itself is checked by the caller."""


RUNTIMES: Registry[Runtime] = Registry("latency runtime")
"""The registry; :mod:`archdsl.compiler.runtimes` imports every kind."""


def register(runtime: Runtime) -> Runtime:
    """Add ``runtime`` under its name; a name registered twice is a programming error."""
    return RUNTIMES.register(runtime.name, runtime)
