"""``train.compile``: the backbone's forward compiled in the process that trains, once per trial.

* Per process: :class:`CompiledForward` is made by ``ClassificationModule.configure_model``, which Lightning runs
  in every DDP rank after the module arrived there; a module pickles without it (a compiled function does not).
* Per trial: every backbone's ``forward`` is one code object, so dynamo's cache entries for it add up over the
  trials of a worker until its recompile limit (8) fails a trial; :func:`fresh_compiler` clears them before a fit.
* One graph per mode: the batch dimension is dynamic, so the last short batch of an epoch reuses the graph of the
  full ones; training and evaluation compile once each (grad mode and the modules' ``training`` flags are guards;
  ``fit`` evaluates under ``no_grad`` throughout, as Lightning validates during fit, so the final validation and
  test reuse the evaluation graph). One exception on the CPU: it picks a convolution's kernels by batch size
  (oneDNN from 16 images; a guard ``16 <= batch``), so a batch on the other side of 16 than the first compiles
  one more graph for its mode.

An error of the compiler (dynamo, inductor) fails its trial as a ``compile`` fault (:mod:`archdsl.search.faults`).
"""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["BACKEND_VARIABLE", "CompiledForward", "backend", "fresh_compiler"]

BACKEND_VARIABLE = "ARCHDSL_COMPILE_BACKEND"
"""The environment variable naming another ``torch.compile`` backend than ``inductor`` (``aot_eager`` to tell an
inductor problem from a dynamo one, or a backend registered with ``torch._dynamo.register_backend``); spawned
DDP ranks inherit it."""


def backend() -> str:
    """The ``torch.compile`` backend: :data:`BACKEND_VARIABLE`, else ``inductor``."""
    return os.environ.get(BACKEND_VARIABLE) or "inductor"


class CompiledForward:
    """``module.forward`` through ``torch.compile`` (whole graph, batch dimension dynamic)."""

    def __init__(self, module: nn.Module) -> None:
        self._forward = torch.compile(module.forward, fullgraph=True, backend=backend())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 0)  # a size-1 batch is still specialised (no error)
        out: torch.Tensor = self._forward(x)
        return out


def fresh_compiler() -> None:
    """Forget every compiled graph and guard of this process (``torch._dynamo.reset``): a new trial starts
    with dynamo's recompile budget whole."""
    torch._dynamo.reset()
