"""The device check: archdsl on one GPU, right and fused, in one script that needs nothing beyond the project.

``python -m benchmarks.gpu [--json PATH]`` prints one table (check, status ``ok``/``FAIL``/``skipped``, figure,
seconds) and exits non-zero when a check that ran failed. With CUDA (meant to take under five minutes on one
H100; not yet timed on one):

- ``zoo build``: every spec in specs/ plans and builds (meta device);
- ``zoo cuda <spec>``, every spec: the float32 forward (eval, IEEE float32) on CUDA in the layout chosen for
  CUDA (:func:`archdsl.plan.layout.channels_last`) within ``TOLERANCE`` of the CPU's (max |diff| / max |CPU|),
  then one bf16-autocast training step with finite loss and gradients;
- ``fused halo`` / ``fused global``: every halo and global attention configuration of the zoo, forward and
  backward under bf16 autocast inside ``sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])``, so a call that is
  not fused raises instead of falling back to the math kernel; outputs within ``BF16_TOLERANCE`` of the float32
  CPU path, from NCHW and channels-last inputs;
- ``fused arguments``: what the CUDA path hands ``F.scaled_dot_product_attention`` (4-D contiguous q/k/v, head
  dims a multiple of 8, the bias in q's dtype), recorded call by call;
- ``layout <spec>``: a bf16 training step of HaloNet, BoTNet and ResNet-50 timed NHWC against NCHW on the GPU;
  fails when the layout the rule picks for CUDA is over 10% slower than the other;
- ``sync-free steps``: ``torch.cuda.set_sync_debug_mode("error")`` over a steady-state window of CUDA training
  steps of :class:`archdsl.train.module.ClassificationModule` under a Lightning ``Trainer`` (bf16-mixed, data
  already on the GPU, no logger or progress bar): any host-device synchronisation in those steps fails the row
  and names where it happened;
- ``recipe on the device``: a training step of ``digits_hybrid`` with the whole of ``train.augment`` and
  ``train.ema`` (RandAugment, random erasing, mixup/CutMix, EMA; ``benchmarks.recipe``) on the GPU from uint8
  batches: a finite loss on the GPU; the figure is its median time against the plain step's and the
  host-device synchronisations one step makes (``set_sync_debug_mode("warn")``, kornia's own included);
- ``kernels vs timm`` / ``models vs timm``: ``benchmarks.kernels`` and ``benchmarks.models`` with ``--device cuda
  --bf16`` (skipped when timm does not import; benchmarks/README.md says how to install it);
- ``search 2 workers``: ``archdsl search`` of search/digits.yaml with ``--workers 2 --device cuda`` (both workers
  on the one GPU), 4 trials of 2 epochs.

With ``--quick``, or without CUDA, it runs what the CPU can (CI runs it, ``tests/test_benchmarks.py``): the zoo
build; one bf16-autocast CPU training step of every spec whose forward is under ``CPU_STEP_GFLOPS`` per image (the
digits specs and the tiny hybrids; the paper-resolution specs are one skipped row, being minutes on two cores);
and the ``fused arguments`` check with the CUDA branch forced onto CPU tensors. The CUDA rows are then skipped,
with the reason. ``--checks`` runs a subset (by the names above: ``zoo``, ``fused``, ``layout``, ``sync``,
``recipe``, ``kernels``, ``models``, ``search``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

import archdsl
from archdsl.compiler.build import build_from_plan
from archdsl.nn import relpos
from archdsl.nn.global_attention import GlobalAttention
from archdsl.nn.halo import HaloAttention
from archdsl.plan.layout import channels_last
from archdsl.plan.shapes import ModelPlan
from benchmarks.common import alternate, apply_layout, exact_fp32, machine, pin_threads, report

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
CHECKS = ("zoo", "fused", "layout", "sync", "recipe", "latency", "kernels", "models", "search")
CPU_STEP_GFLOPS = 0.2
"""On the CPU, the training step runs for the specs whose planned forward is at most this many GFLOP per image."""
TOLERANCE = 1e-3
"""float32 forward on CUDA against the CPU's: max |diff| / max |CPU output|."""
BF16_TOLERANCE = 3e-2
"""bf16-autocast fused attention against the float32 CPU path: max |diff| / max |CPU output|."""
LAYOUT_SPECS = ("halonet_h1", "botnet50", "resnet50")
SYNC_SPEC = "digits_hybrid"
COLUMNS = ("check", "status", "figure", "seconds")

Row = dict[str, object]


class Skip(Exception):
    """The check cannot run here; the message says why."""


class CheckFailed(Exception):
    """The check ran and its figure is out of bounds; the message is the figure."""


def run_check(rows: list[Row], check: str, fn: Callable[[], Any]) -> None:
    """Run one check into a row: ``ok`` with the figure it returns, ``skipped`` or ``FAIL`` with the reason."""
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    try:
        result = fn()
        figure, extra = result if isinstance(result, tuple) else (result, {})
        status = "ok"
    except Skip as e:
        status, figure = "skipped", str(e)
    except CheckFailed as e:
        status, figure = "FAIL", str(e)
    except Exception as e:  # a check that crashed is a failed check; the table goes on
        status, figure = "FAIL", describe(e)
    rows.append({"check": check, "status": status, "figure": figure, "seconds": round(time.perf_counter() - start, 2)})
    rows[-1].update(extra)
    print(f"{status:>7}  {check}: {figure}", file=sys.stderr, flush=True)


def describe(e: BaseException) -> str:
    """One line: the exception, its first line, and the innermost frame of archdsl (or of this script) it came from."""
    frames = [
        f for f in traceback.extract_tb(e.__traceback__) if "/archdsl/" in f.filename or "/benchmarks/" in f.filename
    ]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:200]}{where}"


def load(path: Path) -> tuple[Any, ModelPlan]:
    spec = archdsl.load_spec(path)
    return spec, archdsl.plan_model(spec)


def finite_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: Any) -> float:
    """One SGD training step; the loss, after checking that it and every gradient are finite."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    with autocast:
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    loss.backward()
    bad = [name for name, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    value = float(loss.detach())
    if bad or not torch.isfinite(loss):
        raise CheckFailed(f"loss {value}, non-finite gradients in {bad[:3]}")
    opt.step()
    return value


# ---------------------------------------------------------------------------------------------------- zoo


def check_zoo_build() -> str:
    for path in SPECS:
        _, plan = load(path)
        build_from_plan(plan, "meta")
    return f"{len(SPECS)} specs plan and build (meta)"


def check_cpu_step(path: Path) -> str:
    _, plan = load(path)
    torch.manual_seed(0)
    model = build_from_plan(plan)
    x, y = torch.randn(2, *plan.input), torch.randint(0, plan.output[-1], (2,))
    loss = finite_step(model, x, y, torch.autocast("cpu", torch.bfloat16))
    return f"bf16 autocast step, loss {loss:.3f}"


def check_cuda_spec(path: Path, device: torch.device) -> str:
    """float32 forward on CUDA (the CUDA layout) against the CPU's, then one bf16 training step on CUDA."""
    _, plan = load(path)
    torch.manual_seed(0)
    model: nn.Module = build_from_plan(plan).eval()
    x = torch.randn(2, *plan.input)
    with torch.no_grad():
        want = model(x)
    model = apply_layout(model.to(device), channels_last(plan.nodes(), device.type))
    with torch.no_grad(), exact_fp32():
        got = model(x.to(device)).cpu()
    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
    y = torch.randint(0, plan.output[-1], (2,), device=device)
    loss = finite_step(model, x.to(device), y, torch.autocast("cuda", torch.bfloat16))
    figure = f"fp32 vs CPU {err:.1e}, bf16 step loss {loss:.3f}"
    if not err <= TOLERANCE:
        raise CheckFailed(f"{figure} (over {TOLERANCE:g})")
    return figure


# ---------------------------------------------------------------------------------------------------- fused


def attention_configs() -> dict[str, list[dict[str, Any]]]:
    """The distinct halo and global attention modules of the zoo: their constructor arguments."""
    found: dict[str, dict[str, dict[str, Any]]] = {"halo": {}, "global_attention": {}}
    for path in SPECS:
        _, plan = load(path)
        for node in plan.nodes():
            if node.type in found:
                kwargs = dict(node.recipe.kwargs)
                found[node.type][json.dumps(kwargs, sort_keys=True)] = kwargs
    for kwargs in list(found["halo"].values()):  # timm's arithmetic (compat: timm, for timm's weights) too
        timm = kwargs | {"compat": "timm"}
        found["halo"][json.dumps(timm, sort_keys=True)] = timm
    return {kind: list(configs.values()) for kind, configs in found.items()}


def attention_module(kind: str, kwargs: dict[str, Any]) -> tuple[nn.Module, tuple[int, int, int]]:
    if kind == "halo":
        return HaloAttention(**kwargs), (kwargs["channels"], kwargs["height"], kwargs["width"])
    return GlobalAttention(**kwargs), (kwargs["channels"], kwargs["height"], kwargs["width"])


def check_fused(kind: str, device: torch.device) -> str:
    """Every zoo configuration of ``kind``: bf16 forward and backward on CUDA with only the flash and
    memory-efficient kernels enabled (raises when the call is not fused), against the float32 CPU path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    configs = attention_configs()[kind]
    worst = 0.0
    for kwargs in configs:
        torch.manual_seed(0)
        module, shape = attention_module(kind, kwargs)
        x = torch.randn(2, *shape)
        with torch.no_grad():
            want = module(x)
        module.to(device)
        for memory_format in (torch.contiguous_format, torch.channels_last):
            xg = x.to(device).contiguous(memory_format=memory_format).detach().requires_grad_(True)
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                with torch.autocast("cuda", torch.bfloat16):
                    out = module(xg)
                out.float().square().mean().backward()
            err = float((out.detach().float().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-12))
            grads = [xg.grad, *(p.grad for p in module.parameters())]
            if not all(g is not None and bool(torch.isfinite(g).all()) for g in grads):
                raise CheckFailed(f"{kwargs}: a gradient is missing or not finite")
            module.zero_grad(set_to_none=True)
            worst = max(worst, err)
            if not err <= BF16_TOLERANCE:
                raise CheckFailed(f"{kwargs} ({memory_format}): bf16 vs float32 CPU {err:.1e} > {BF16_TOLERANCE:g}")
    return f"{len(configs)} configs fused (flash/efficient only), bf16 vs fp32 CPU max {worst:.1e}"


@contextlib.contextmanager
def recorded_sdpa(force_device: str | None) -> Iterator[list[dict[str, Any]]]:
    """Record every ``F.scaled_dot_product_attention`` call (then make it); ``force_device``: also take the fused
    path on that device type (the CUDA branch on CPU tensors)."""
    calls: list[dict[str, Any]] = []
    real, devices = F.scaled_dot_product_attention, relpos.FUSED_DEVICES

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None, **kw: Any):
        calls.append({"q": q, "k": k, "v": v, "mask": attn_mask, "kw": kw})
        return real(q, k, v, attn_mask=attn_mask, **kw)

    F.scaled_dot_product_attention = spy  # type: ignore[assignment]
    if force_device:
        relpos.FUSED_DEVICES = devices | {force_device}
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = real
        relpos.FUSED_DEVICES = devices


def argument_problems(call: dict[str, Any]) -> list[str]:
    q, k, v, mask = call["q"], call["k"], call["v"], call["mask"]
    problems = []
    if not q.dim() == k.dim() == v.dim() == 4:
        problems.append(f"q/k/v are {q.dim()}-D/{k.dim()}-D/{v.dim()}-D, not 4-D")
    if not (q.is_contiguous() and k.is_contiguous() and v.is_contiguous()):
        problems.append(f"strides q {q.stride()}, k {k.stride()}, v {v.stride()}")
    if q.shape[-1] % 8 or v.shape[-1] % 8:
        problems.append(f"head dims {q.shape[-1]}/{v.shape[-1]} not multiples of 8")
    if mask is None or mask.dtype != q.dtype or mask.dim() != 4:
        problems.append(f"mask {None if mask is None else (mask.dtype, tuple(mask.shape))} for q {q.dtype}")
    return problems


def check_fused_arguments(device: torch.device) -> str:
    """Halo (head dims 4 and 8, padded ones) and global attention (4 and 32) through the CUDA path, in float
    (float64 on the CPU, float32 on CUDA) and in float32 under bf16 autocast: the arguments SDPA gets, call by
    call, and the outputs against the CPU path; forward and backward."""
    configs: list[tuple[str, dict[str, Any]]] = [
        ("halo", {"channels": 12, "value_channels": 24, "height": 8, "width": 12, "block_size": 4, "halo_size": 2,
                  "num_heads": 3, "stride": 1}),
        ("halo", {"channels": 16, "value_channels": 32, "height": 8, "width": 8, "block_size": 4, "halo_size": 1,
                  "num_heads": 2, "stride": 2}),
        ("global_attention", {"channels": 12, "height": 3, "width": 5, "num_heads": 3, "stride": 1}),
        ("global_attention", {"channels": 64, "height": 4, "width": 4, "num_heads": 2, "stride": 2}),
    ]  # fmt: skip
    exact = torch.float64 if device.type == "cpu" else torch.float32
    force = device.type if device.type not in relpos.FUSED_DEVICES else None
    worst = {"float": 0.0, "bf16": 0.0}
    count = 0
    for kind, kwargs in configs:
        for bf16 in (False, True):
            dtype = torch.float32 if bf16 else exact  # autocast lowers float32 only
            torch.manual_seed(0)
            module, shape = attention_module(kind, kwargs)
            module = module.to(dtype)
            x = torch.randn(2, *shape, dtype=dtype)
            with torch.no_grad():
                want = module(x)  # the CPU path
            module.to(device)
            autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else contextlib.nullcontext()
            xg = x.to(device).requires_grad_(True)
            with recorded_sdpa(force) as calls, exact_fp32():
                with autocast:
                    out = module(xg)
                out.float().square().sum().backward()
            if len(calls) != 1:
                raise CheckFailed(f"{kind}: {len(calls)} SDPA calls, not 1")
            problems = argument_problems(calls[0])
            q_dtype = torch.bfloat16 if bf16 else dtype
            if calls[0]["q"].dtype != q_dtype:
                problems.append(f"q {calls[0]['q'].dtype}, not {q_dtype}")
            if xg.grad is None or not torch.isfinite(xg.grad).all():
                problems.append("no finite input gradient")
            if problems:
                raise CheckFailed(f"{kind} {kwargs}: {'; '.join(problems)}")
            key = "bf16" if bf16 else "float"
            err = float((out.detach().to(dtype).cpu() - want).abs().max() / want.abs().max())
            worst[key] = max(worst[key], err)
            count += 1
    bounds = {"float": 1e-10 if exact == torch.float64 else 1e-4, "bf16": BF16_TOLERANCE}
    figure = (
        f"{count} calls on {device.type}{' (CUDA branch forced)' if force else ''}: 4-D contiguous, bias in q dtype; "
        f"vs CPU path: {str(exact).removeprefix('torch.')} {worst['float']:.1e}, bf16 {worst['bf16']:.1e}"
    )
    if any(worst[k] > bounds[k] for k in worst):
        raise CheckFailed(f"{figure} (bounds {bounds})")
    return figure


# ---------------------------------------------------------------------------------------------------- layout


def check_layout(name: str, device: torch.device, batch: int = 16) -> tuple[str, dict[str, Any]]:
    """A bf16 training step NHWC against NCHW on the GPU; the rule's choice must not be the slower by over 10%."""
    _, plan = load(ROOT / "specs" / f"{name}.yaml")
    x = torch.randn(batch, *plan.input, device=device)
    y = torch.randint(0, plan.output[-1], (batch,), device=device)
    steps = {}
    for layout in ("nhwc", "nchw"):
        torch.manual_seed(0)
        model = apply_layout(build_from_plan(plan).to(device), layout == "nhwc").train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", torch.bfloat16):
                out = model(x)
            F.cross_entropy(out.float(), y).backward()
            opt.step()

        steps[layout] = step
    ms = alternate(steps, rounds=10, warmup=3, device=device)
    rule = "nhwc" if channels_last(plan.nodes(), "cuda") else "nchw"
    other = "nchw" if rule == "nhwc" else "nhwc"
    figure = f"batch {batch}: nhwc {ms['nhwc']:.1f} ms, nchw {ms['nchw']:.1f} ms; rule picks {rule}"
    if ms[rule] > 1.1 * ms[other]:
        raise CheckFailed(f"{figure}, {ms[rule] / ms[other]:.2f}x slower")
    return figure, {"ms": {k: round(v, 3) for k, v in ms.items()}, "rule": rule}


# ---------------------------------------------------------------------------------------------------- sync


def check_sync(device: torch.device, warmup: int = 3, window: int = 4) -> str:
    """Steps ``warmup`` .. ``warmup + window - 1`` of a Lightning fit of ClassificationModule under
    ``torch.cuda.set_sync_debug_mode("error")``: a host read of the device in a step raises there."""
    import lightning as L

    from archdsl.spec.load import spec_to_data
    from archdsl.train.module import ClassificationModule

    spec, plan = load(ROOT / "specs" / f"{SYNC_SPEC}.yaml")
    batch = 32
    steps = warmup + window + 1
    torch.manual_seed(0)
    images = torch.randn(steps * batch, *plan.input, device=device)
    labels = torch.randint(0, plan.output[-1], (steps * batch,), device=device)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=batch)
    module = ClassificationModule(build_from_plan(plan), spec_to_data(spec))
    apply_layout(module.backbone, channels_last(plan.nodes(), device.type))

    class SyncWindow(L.Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == warmup:
                torch.cuda.synchronize(device)
                torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == warmup + window - 1:
                torch.cuda.set_sync_debug_mode(0)

    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=10 * steps,
        callbacks=[SyncWindow()],
    )
    try:
        trainer.fit(module, train_dataloaders=loader)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return f"{SYNC_SPEC}, Lightning bf16-mixed: steps {warmup}-{warmup + window - 1} ran with no host-device sync"


def check_recipe(device: torch.device, rounds: int = 20) -> str:
    """The full recipe's training step on ``device``: median ms against the plain step, host syncs per step."""
    import warnings

    from benchmarks import recipe

    full, plain = recipe.RECIPES["full"], recipe.RECIPES["plain"]
    steps = {"plain": recipe.make_step(SYNC_SPEC, *plain, device), "full": recipe.make_step(SYNC_SPEC, *full, device)}
    ms = alternate(steps, rounds, 3, device)
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss = steps["full"]()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    if loss.device.type != "cuda" or not bool(torch.isfinite(loss)):
        raise RuntimeError(f"the full recipe's step gave loss {float(loss)} on {loss.device}")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    overhead = ms["full"] / ms["plain"] - 1
    return (
        f"{SYNC_SPEC}: plain {ms['plain']:.2f} ms, full recipe {ms['full']:.2f} ms ({overhead:+.0%}); "
        f"{syncs} host syncs in a full step"
    )


# ---------------------------------------------------------------------------------------------------- vs timm


LATENCY_SPECS = ("digits_hybrid", "resnet50")
"""Specs whose latency ``budget.latency`` times on the device in every runtime (a small hybrid, a big conv net)."""


def check_latency(device: torch.device) -> tuple[str, dict[str, Any]]:
    """``budget.latency`` on the device: each runtime's median batch-1 latency of each spec (ONNX Runtime only
    where its CUDA execution provider is installed), every runtime's output checked against eager's first."""
    from archdsl.compiler.latency import measure_latency
    from archdsl.compiler.runtimes import RUNTIMES

    figures: dict[str, Any] = {}
    parts = []
    for name in LATENCY_SPECS:
        _, plan = load(ROOT / "specs" / f"{name}.yaml")
        model = build_from_plan(plan, device=str(device)).eval()
        x = torch.randn(1, *plan.input, device=device)
        with torch.no_grad():
            want = model(x).float().cpu()
        row = {}
        for runtime in RUNTIMES.names():
            why = RUNTIMES.get(runtime).missing(device.type)
            if why is not None:
                row[runtime] = f"skipped: {why}"
                continue
            with torch.no_grad():
                got = RUNTIMES.get(runtime).prepare(model, x, 1)().float().cpu()
            err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
            if not err <= 1e-3:
                raise CheckFailed(f"{name} in {runtime}: output differs from eager by {err:.1e}")
            row[runtime] = measure_latency(model, tuple(plan.input), runtime, threads=1).ms
        figures[name] = row
        parts.append(name + " " + " / ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)))
    return "ms: " + "; ".join(parts), figures


def timm_version() -> str:
    try:
        import timm
    except ImportError as e:
        raise Skip(f"timm does not import ({e}); install it as benchmarks/README.md says") from e
    return str(timm.__version__)


def check_versus_timm(which: str, out_dir: Path) -> tuple[str, dict[str, Any]]:
    from benchmarks import kernels, models

    version = timm_version()
    path = out_dir / f"{which}.json"
    argv = ["--device", "cuda", "--bf16", "--threads", str(torch.get_num_threads()), "--json", str(path)]
    if which == "models":
        argv += ["--batch", "32"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = (kernels.main if which == "kernels" else models.main)(argv)
    if code != 0:
        raise CheckFailed(f"benchmarks.{which} exited {code}")
    rows = json.loads(path.read_text())["rows"]
    keys = ("op", "mode") if which == "kernels" else ("model", "mode")
    speedups = [
        f"{' '.join(str(r[k]) for k in keys)} {r['speedup_vs_timm']:.2f}x" for r in rows if "speedup_vs_timm" in r
    ]
    return f"timm {version}; archdsl/timm speed: " + ", ".join(speedups), {"rows": rows}


# ---------------------------------------------------------------------------------------------------- search


def search_files(tmp: Path, trials: int, epochs: int) -> Path:
    """search/digits.yaml cut to ``trials`` trials of ``epochs`` epochs, on a copy of its base spec, in ``tmp``."""
    search = yaml.safe_load((ROOT / "search" / "digits.yaml").read_text())
    base_path = (ROOT / "search" / search["base"]).resolve()
    base = yaml.safe_load(base_path.read_text())
    base["train"]["epochs"] = epochs
    (tmp / base_path.name).write_text(yaml.safe_dump(base, sort_keys=False))
    search["base"] = base_path.name
    search["budget"]["trials"] = trials
    search["pruner"]["warmup_epochs"] = min(search["pruner"].get("warmup_epochs", 0), epochs - 1)
    path = tmp / "digits.yaml"
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


def check_search(device: str, trials: int = 4, epochs: int = 2, timeout_s: int = 240) -> tuple[str, dict[str, Any]]:
    """``archdsl search`` with two local workers on ``device`` (both on GPU 0 when there is one)."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = search_files(tmp, trials, epochs)
        cmd = [sys.executable, "-m", "archdsl", "search", str(path), "--workers", "2", "--device", device]
        cmd += ["--trials", str(trials), "--out", str(tmp / "out"), "--new-study", "--json"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CheckFailed(f"exit {proc.returncode}: {tail[:200]}")
    result = json.loads(lines[-1])
    done = result.get("trials", {})
    best = result.get("best") or [{}]
    figure = f"2 workers on {device}: trials {done}, best val/acc {best[0].get('values')}"
    if not done.get("complete"):
        raise CheckFailed(f"{figure}: no trial completed")
    return figure, {"search": result}


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CPU checks only (CI)")
    parser.add_argument("--checks", nargs="*", default=list(CHECKS), choices=CHECKS, help="run these checks only")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: 2 quick, else all cores)")
    parser.add_argument("--json", default=None, help="write the machine and the rows here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.quick
    pin_threads(args.threads or (2 if not cuda else os.cpu_count() or 2))
    device = torch.device("cuda" if cuda else "cpu")
    no_cuda = "--quick" if args.quick else "no CUDA"
    todo = set(args.checks)
    rows: list[Row] = []

    def skipped(check: str, reason: str) -> None:
        rows.append({"check": check, "status": "skipped", "figure": reason, "seconds": 0.0})

    if "zoo" in todo:
        run_check(rows, "zoo build", check_zoo_build)
        if cuda:
            for path in SPECS:
                run_check(rows, f"zoo cuda {path.stem}", partial(check_cuda_spec, path, device))
        else:
            small = [p for p in SPECS if load(p)[1].flops <= CPU_STEP_GFLOPS * 1e9]
            for path in small:
                run_check(rows, f"zoo cpu {path.stem}", partial(check_cpu_step, path))
            skipped(
                f"zoo cpu: {len(SPECS) - len(small)} larger specs",
                f"forward over {CPU_STEP_GFLOPS:g} GFLOP per image: minutes on the CPU, run with CUDA",
            )
            skipped(f"zoo cuda: {len(SPECS)} specs", no_cuda)
    if "fused" in todo:
        run_check(rows, "fused arguments", lambda: check_fused_arguments(device))
        for kind in ("halo", "global_attention"):
            check = f"fused {kind.replace('_attention', '')}"
            if cuda:
                run_check(rows, check, partial(check_fused, kind, device))
            else:
                skipped(check, no_cuda)
    if "layout" in todo:
        for name in LAYOUT_SPECS:
            if cuda:
                run_check(rows, f"layout {name}", partial(check_layout, name, device))
            else:
                skipped(f"layout {name}", no_cuda)
    if "sync" in todo:
        if cuda:
            run_check(rows, "sync-free steps", lambda: check_sync(device))
        else:
            skipped("sync-free steps", no_cuda)
    if "recipe" in todo:
        if cuda:
            run_check(rows, "recipe on the device", lambda: check_recipe(device))
        else:
            skipped("recipe on the device", no_cuda)
    if "latency" in todo:
        if cuda:
            run_check(rows, "latency runtimes", lambda: check_latency(device))
        else:
            skipped("latency runtimes", no_cuda)
    with tempfile.TemporaryDirectory() as tmp:
        for which in ("kernels", "models"):
            if which in todo:
                if cuda:
                    run_check(rows, f"{which} vs timm", partial(check_versus_timm, which, Path(tmp)))
                else:
                    skipped(f"{which} vs timm", no_cuda)
    if "search" in todo:
        if cuda:
            run_check(rows, "search 2 workers", lambda: check_search("cuda"))
        else:
            skipped("search 2 workers", no_cuda)
    info = machine(device) | {"quick": args.quick, "cuda": cuda}
    report(info, rows, COLUMNS, args.json)
    failed = [r["check"] for r in rows if r["status"] == "FAIL"]
    if failed:
        print(f"FAILED: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
