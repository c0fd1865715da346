"""What every benchmark shares: thread pinning, alternating timed runs with medians, peak memory, tables, JSON.

Timing rule (one run, one process): each implementation is warmed up, then the implementations take turns,
one timed call each per round, so a change in machine load hits all of them alike; the figure is the median
over rounds. Peak memory is what the step allocates beyond what was live before it: on CUDA the caching
allocator's peak, on the CPU the running sum of the profiler's allocation events (every tensor the step
allocates and frees, in order), so both implementations are charged the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archdsl.atomic import atomic_write_text
from archdsl.nn.backbone import Backbone

Step = Callable[[], object]


def pin_threads(threads: int) -> int:
    """Fix torch's intra-op thread count (and one inter-op thread) so runs are comparable."""
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(steps: Mapping[str, Step], rounds: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median milliseconds per call of each step, timed in alternation (round-robin) after ``warmup`` calls."""
    for step in steps.values():
        for _ in range(warmup):
            step()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_mb(step: Step, device: torch.device) -> float:
    """Peak MiB allocated by one call of ``step`` beyond what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    live = peak = 0
    for _, nbytes in _cpu_memory_events(prof):
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def _cpu_memory_events(prof: Any) -> list[tuple[int, int]]:
    return sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type().name == "CPU"
    )


def matmul_gflops(
    device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None, rounds: int = 10
) -> float:
    """This machine's matrix-multiply rate in ``dtype`` (GFLOP/s, median), the yardstick for achieved throughput:
    n x n products, n = 1024 on the CPU and 4096 on a GPU (a 1024 product there takes less than a launch)."""
    n = n or (4096 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = alternate({"mm": lambda: a @ b}, rounds=rounds, warmup=3, device=device)["mm"]
    return 2 * n**3 / (ms * 1e-3) / 1e9


def machine(device: torch.device) -> dict[str, object]:
    """Where the figures came from: printed above every table and stored in the JSON."""
    info: dict[str, object] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        info["timm"] = None
    return info


def table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Plain aligned text table of ``columns`` (floats to 2 decimals)."""

    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def add_speedups(rows: Sequence[dict[str, object]], key: Sequence[str]) -> None:
    """Give every archdsl row ``speedup_vs_timm`` (timm ms / archdsl ms) where a timm row has the same ``key``."""
    timm = {tuple(r[k] for k in key): float(r["ms"]) for r in rows if r["impl"] == "timm"}  # type: ignore[arg-type]
    for r in rows:
        match = timm.get(tuple(r[k] for k in key))
        if r["impl"] == "archdsl" and match is not None:
            r["speedup_vs_timm"] = round(match / float(r["ms"]), 3)  # type: ignore[arg-type]


def report(
    info: dict[str, object], rows: Sequence[dict[str, object]], columns: Sequence[str], path: str | None
) -> None:
    """Print the machine line and the table; write both as JSON to ``path`` (atomically) when given."""
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    print(table(rows, columns))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(path), json.dumps({"machine": info, "rows": list(rows)}, indent=2) + "\n")


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """float32 matrix products and convolutions in IEEE float32 (cuDNN's convolutions use TF32 by default, whose
    10-bit mantissa fails equality checks between implementations); a no-op on the CPU."""
    conv_flags: Any = torch.backends.cudnn.conv  # type: ignore[attr-defined]  # torch's stub lacks it
    matmul, conv = torch.backends.cuda.matmul.fp32_precision, conv_flags.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "ieee"  # the TF32 switches of torch >= 2.9 (never mixed with the
    conv_flags.fp32_precision = "ieee"  # legacy allow_tf32 ones, which torch refuses)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = matmul
        conv_flags.fp32_precision = conv


def apply_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """Put a built archdsl model (weights, and the inputs it converts on entry) in NHWC or NCHW memory: the layout
    :func:`archdsl.plan.layout.channels_last` picks for the device it runs on. Values are unchanged."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # type: ignore[call-overload]  # torch's stub lacks memory_format
    if isinstance(model, Backbone):
        model.channels_last = channels_last  # it converts its input on entry by this flag
    return model


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
