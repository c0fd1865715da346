"""Batch-1 forward latency: the median of repeated passes after warm-up, on the model's device."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

__all__ = ["measure_latency_ms"]


@torch.no_grad()
def measure_latency_ms(model: nn.Module, input_shape: tuple[int, ...], warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time in milliseconds of ``model(x)`` for one (1, *input_shape) input."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.randn(1, *input_shape, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        model(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    model.train(was_training)
    return statistics.median(times)
