"""Latency of a model in a runtime: the median wall time of one inference after warm-up runs.

:func:`measure_latency` prepares the runtime (:mod:`archdsl.compiler.runtimes`: the module itself, or its exported
program in memory), runs it ``warmup`` times, then times ``repeats`` runs one by one (synchronising CUDA after
each) and keeps the median. ``threads`` is set in torch (``torch.set_num_threads``, restored afterwards) and in the
runtime. The :class:`Timing` it returns says what was timed, how.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from archdsl.compiler.runtimes import RUNTIMES

__all__ = ["REPEATS", "WARMUP", "Timing", "measure_latency", "measure_latency_ms"]

WARMUP, REPEATS = 3, 10
"""Untimed runs first (allocations, lazy initialisation, caches), then timed runs whose median is kept."""


@dataclass(frozen=True)
class Timing:
    """A latency and the settings it was measured with."""

    ms: float
    """Median milliseconds of one inference of the batch."""
    runtime: str
    device: str
    """The torch device the model ran on (``cpu``, ``cuda:0``)."""
    batch: int
    threads: int
    """Intra-op threads, in torch and in the runtime."""
    warmup: int
    repeats: int

    def settings(self) -> dict[str, Any]:
        """Everything but the figure: what a trial records beside its ``latency_ms``."""
        return {k: v for k, v in asdict(self).items() if k != "ms"}


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    runtime: str = "eager",
    *,
    batch: int = 1,
    threads: int | None = None,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
) -> Timing:
    """Median milliseconds of one inference of a random ``(batch, *input_shape)`` input by ``model`` (on the device
    of its parameters) in ``runtime``; ``threads`` None keeps torch's current count. The model's training mode and
    torch's thread count are as they were afterwards."""
    chosen = RUNTIMES.get(runtime)
    device = next(model.parameters()).device
    previous = torch.get_num_threads()
    threads = threads or previous
    was_training = model.training
    model.eval()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(batch, *input_shape, device=device)
        run = chosen.prepare(model, x, threads)
        times = _time(run, device, warmup, repeats)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    return Timing(statistics.median(times), runtime, str(device), batch, threads, warmup, repeats)


@torch.no_grad()
def _time(run: Any, device: torch.device, warmup: int, repeats: int) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure_latency_ms(
    model: nn.Module, input_shape: tuple[int, ...], warmup: int = WARMUP, repeats: int = REPEATS
) -> float:
    """Median wall time in milliseconds of ``model(x)`` for one ``(1, *input_shape)`` input, eager."""
    return measure_latency(model, input_shape, warmup=warmup, repeats=repeats).ms
