"""``archdsl search --workers N``: N ``archdsl worker`` processes on this machine, sharing one study.

The study is created here, once, before any worker starts (several processes creating an SQLite schema
together crash). Each worker gets ``threads // N`` torch threads (``OMP_NUM_THREADS`` too) and, when GPUs
are visible, GPUs of its own through ``CUDA_VISIBLE_DEVICES`` (``train.devices`` of them for multi-GPU
trials). Workers run in sessions of their own, so a terminal's Ctrl-C reaches only this process, which
hands exactly one SIGINT to each worker (each hands its trial back) and waits for them; SIGTERM is passed
on the same way. Progress is read from the study, so the trials of every worker appear in one display;
each worker's own output goes to ``DIR/logs/worker-K.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from archdsl.launch.common import devices_per_trial
from archdsl.search import (
    SearchResult,
    Stopped,
    WorkerOptions,
    best_trials,
    open_study,
    record_study,
    require_latency,
    require_tracking,
    require_worker_device,
    resolve_storage,
    tally,
    timeout_reason,
)
from archdsl.search.report import Progress, say_resuming
from archdsl.search.space import SearchSpace
from archdsl.search.storages import PASSWORD_ENV, StorageRef, open_storage
from archdsl.train.preempt import Preempted, PreemptionGuard

__all__ = ["plan_workers", "run_local"]

STOP_WAIT_SECONDS = 90.0
"""How long stopping workers may take to hand their trials back before they are killed."""


@dataclass(frozen=True)
class WorkerSlot:
    """One local worker: its threads, its device and its GPUs."""

    index: int
    threads: int
    device: str | None
    gpus: str | None
    """``CUDA_VISIBLE_DEVICES`` for this worker, or ``None`` to leave it as it is."""


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def plan_workers(n: int, device: str | None, gpus_per_trial: int, cores: int, gpus: list[str]) -> list[WorkerSlot]:
    """Split ``cores`` threads evenly; give each worker ``gpus_per_trial`` of the visible GPUs."""
    threads = max(1, cores // n)
    use_gpus = bool(gpus) and device in (None, "cuda")
    slots = []
    for i in range(n):
        if use_gpus:
            start = (i * gpus_per_trial) % len(gpus)
            mine = [gpus[(start + k) % len(gpus)] for k in range(gpus_per_trial)]
            slots.append(WorkerSlot(i, threads, "cuda", ",".join(mine)))
        else:
            slots.append(WorkerSlot(i, threads, device, None))
    return slots


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _command(
    space: SearchSpace, url: str, name: str, options: WorkerOptions, target: int, slot: WorkerSlot
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "archdsl",
        "worker",
        str(Path(space.doc.file).resolve()),
        "--storage",
        url,
        "--study",
        name,
        "--out",
        str(options.out),
        "--trials",
        str(target),
        "--threads",
        str(slot.threads),
        "--label",
        f"w{slot.index}",
        "--quiet",
    ]
    if slot.device:
        cmd += ["--device", slot.device]
    if options.timeout_minutes:
        cmd += ["--timeout", str(options.timeout_minutes)]
    if options.allow_import:
        cmd.append("--allow-import")
    return cmd


def run_local(space: SearchSpace, storage_url: str | None, options: WorkerOptions, *, workers: int) -> SearchResult:
    require_latency(space, require_worker_device(space, options.device))
    require_tracking(space)  # refused once, before any worker process starts (each checks again where it runs)
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = replace(options, out=out)
    ref = resolve_storage(storage_url, out)
    name = options.study_name or space.name
    storage = open_storage(ref, space.definition.workers)
    per_trial = devices_per_trial(space)
    if ref.kind == "postgresql":  # before the study is made: a refusal leaves nothing behind
        from archdsl.search.storages import check_connection_budget

        check_connection_budget(storage, workers, trial_processes=per_trial)
    study = open_study(space, storage, ref, name, out, new_study=options.new_study, trials=options.trials)
    record_study(out, ref, name)
    target = options.trials or space.definition.budget.trials
    if options.progress:
        say_resuming(study, ref.display, target)
    slots = plan_workers(workers, options.device, per_trial, _cores(), _visible_gpus())
    processes = _start(space, ref, name, options, target, slots)
    deadline = time.monotonic() + options.timeout_minutes * 60 if options.timeout_minutes else None
    progress = Progress(space, target, study, show_worker=True, deadline=deadline) if options.progress else None
    stopped: Stopped = "budget"
    reason = ""
    with PreemptionGuard() as guard:
        try:
            gone: set[int] = set()
            while any(p.poll() is None for p, _ in processes):
                if progress:
                    progress.update(study)
                _say_exits(processes, gone, out, space.definition.workers.grace_seconds)
                guard.wait(1.0)
        except KeyboardInterrupt as stop:  # Preempted (SIGTERM or the first Ctrl-C) or a second Ctrl-C
            interrupted = not isinstance(stop, Preempted) or stop.reason == "interrupted"
            _stop(processes, signal.SIGINT if interrupted else signal.SIGTERM)
            stopped = "interrupted" if interrupted else "preempted"
            reason = "Ctrl-C" if interrupted else "SIGTERM: the running trials are queued again"
        finally:
            for _, log in processes:
                log.close()
    if progress:
        progress.update(study)
    counts = tally(study.get_trials(deepcopy=False))
    if stopped == "budget" and counts.finished < target:
        failed = [(i, p.returncode) for i, (p, _) in enumerate(processes) if p.returncode != 0]
        if failed:
            stopped, reason = "failures", _failure(failed, out)
        else:
            stopped, reason = "timeout", timeout_reason(options.timeout_minutes, counts.finished, target)
    return SearchResult(name, ref.display, space.objective_names, best_trials(study), counts, stopped, reason)


def _start(
    space: SearchSpace, ref: StorageRef, name: str, options: WorkerOptions, target: int, slots: list[WorkerSlot]
) -> list[tuple[subprocess.Popen[bytes], IO[bytes]]]:
    url, password = ref.split_password()
    logs = options.out / "logs"
    logs.mkdir(exist_ok=True)
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    for slot in slots:
        env = {**os.environ, "OMP_NUM_THREADS": str(slot.threads), "MKL_NUM_THREADS": str(slot.threads)}
        if password:
            env[PASSWORD_ENV] = password
        if slot.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpus
        log = (logs / f"worker-{slot.index}.log").open("ab")
        proc = subprocess.Popen(
            _command(space, url, name, options, target, slot),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        started.append((proc, log))
    return started


def _stop(processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]], sig: signal.Signals) -> None:
    """One signal to each live worker; wait for them to hand their trials back; kill what is left."""
    print(f"stopping {sum(p.poll() is None for p, _ in processes)} workers ({sig.name})", file=sys.stderr)
    for p, _ in processes:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    for p, _ in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _say_exits(
    processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]], gone: set[int], out: Path, grace: int
) -> None:
    """One line when a worker ends before the others (a crash, a kill)."""
    for i, (p, _) in enumerate(processes):
        if i in gone or p.poll() is None or p.returncode == 0:
            continue
        gone.add(i)
        how = f"signal {-p.returncode}" if p.returncode < 0 else f"code {p.returncode}"
        log = out / "logs" / f"worker-{i}.log"
        print(
            f"worker {i} (pid {p.pid}) exited with {how}; the others go on, and its trial is failed and queued "
            f"again after workers.grace_seconds={grace} s without a heartbeat (log: {log})",
            file=sys.stderr,
            flush=True,
        )


def _failure(failed: list[tuple[int, int | None]], out: Path) -> str:
    parts = []
    for i, code in failed:
        log = out / "logs" / f"worker-{i}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
        said = [line for line in lines if line.startswith("search stopped (")]  # the worker's own reason
        last = said[-1] if said else lines[-1] if lines else "no output"
        how = f"signal {-code}" if code is not None and code < 0 else f"code {code}"
        parts.append(f"worker {i} exited with {how}: {last}")
    return "; ".join(parts) + f" (logs in {out / 'logs'})"
