"""Defaults that make a GPU fast and leave the CPU as it was: ``train.precision: auto`` (bf16-mixed on a CUDA device
with bfloat16 arithmetic, float32 elsewhere), TF32 matmuls and cuDNN benchmarking on CUDA unless
``train.deterministic``, and a finiteness check of the loss that never makes a step wait for the device.

The CUDA tests run only where torch sees a GPU; the rest run everywhere (the CPU ones need CUDA absent)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from archdsl.errors import SpecError
from archdsl.planner import plan_spec
from archdsl.spec.load import spec_from_text
from archdsl.spec.train import TrainSpec
from archdsl.train.finite import LossWatch, NonFiniteLossError
from archdsl.train.fit import TrainingError, fit
from archdsl.train.precision import lightning_precision, resolve_precision

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="shows the CPU defaults: needs CUDA absent")

SPEC = """\
name: defaults
input: {{channels: 1, size: 8}}
stem: {{type: conv, channels: 8}}
stages:
  - {{channels: 16, stride: 2, blocks: [{{type: bottleneck, width: 8}}]}}
head: {{type: classifier, num_classes: 4}}
train:
  epochs: 1
  batch_size: 16
  optimizer: {{name: {opt}, lr: {lr}}}
  data: {{name: synthetic, num_samples: {samples}}}
{extra}"""


def spec(extra: str = "", lr: float = 3e-3, opt: str = "adamw", samples: int = 64) -> Any:
    text = SPEC.format(extra="".join(f"  {line}\n" for line in extra.splitlines()), lr=lr, opt=opt, samples=samples)
    return plan_spec(spec_from_text(text, "defaults.yaml"))


def _numerics() -> dict[str, Any]:
    return {
        "matmul": torch.get_float32_matmul_precision(),
        "benchmark": torch.backends.cudnn.benchmark,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


class Numerics(Callback):
    """What a training step ran with: the trainer's precision, torch's global numerics, the logits' dtype."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        x = args[1][0]
        self.seen = {"precision": trainer.precision, "device": x.device.type, **_numerics()}
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            self.seen["logits"] = pl_module(x).dtype


def test_precision_defaults_to_auto_and_determinism_to_off() -> None:
    train = TrainSpec()
    assert (train.precision, train.deterministic) == ("auto", False)
    assert resolve_precision(train, "cpu", 1) == "32-true"


@pytest.mark.parametrize(
    ("precision", "device", "native_bf16", "expected"),
    [
        ("auto", "cuda", True, "bf16-mixed"),
        ("auto", "cuda", False, "32-true"),  # bfloat16 only emulated (before compute capability 8.0)
        ("auto", "cpu", False, "32-true"),
        ("auto", "mps", False, "32-true"),
        ("32", "cuda", True, "32-true"),
        ("bf16-mixed", "cpu", False, "bf16-mixed"),
        ("16-mixed", "cuda", False, "16-mixed"),
    ],
)
def test_precision_is_resolved_for_the_device(precision: str, device: Any, native_bf16: bool, expected: str) -> None:
    assert lightning_precision(precision, device, native_bf16=native_bf16) == expected


@needs_no_cuda
def test_a_cpu_run_keeps_the_cpu_defaults(tmp_path: Path) -> None:
    """Without CUDA, the default spec trains as before: float32, torch's matmul precision, no cuDNN benchmarking,
    nondeterministic algorithms allowed; and the process's settings are the same after the run."""
    before = _numerics()
    seen = Numerics()
    fit(spec(), tmp_path / "run", progress=False, test=False, callbacks=[seen])
    assert seen.seen == {
        "precision": "32-true",
        "device": "cpu",
        "matmul": before["matmul"],
        "benchmark": before["benchmark"],
        "deterministic": False,
        "logits": torch.float32,
    }
    assert _numerics() == before
    checkpoint = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["spec"]["train"]["precision"] == "auto"  # what was asked, not resolved


@needs_no_cuda
def test_deterministic_holds_for_the_run_only(tmp_path: Path) -> None:
    before = _numerics()
    seen = Numerics()
    fit(spec("deterministic: true"), tmp_path / "run", progress=False, test=False, callbacks=[seen])
    assert seen.seen["deterministic"] is True and seen.seen["benchmark"] is False
    assert _numerics() == before


@needs_no_cuda
def test_sixteen_mixed_on_the_cpu_is_refused_at_its_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(SpecError) as err:
        fit(spec("precision: 16-mixed"), out, progress=False)
    (problem,) = err.value.problems
    assert str(problem).startswith("defaults.yaml:12:14: train.precision: 16-mixed needs a CUDA device")
    assert not out.exists()  # refused before the run directory was made
    with pytest.raises(SpecError, match="precision 16-mixed needs a CUDA accelerator"):
        spec("precision: 16-mixed\naccelerator: cpu")  # the spec says cpu itself: refused when read


def test_the_loss_watch_names_the_first_non_finite_step_when_checked() -> None:
    watch = LossWatch()
    watch.check()  # nothing recorded: nothing to read
    for step, value in enumerate([2.0, 1.5, math.nan, math.inf, 1.0]):
        watch.record(torch.tensor(value), 3, step, 100 + step)
    with pytest.raises(NonFiniteLossError) as err:
        watch.check()
    assert (err.value.epoch, err.value.step, err.value.global_step) == (3, 2, 102)
    assert math.isnan(err.value.value) and str(err.value) == "loss is nan at epoch 3, step 2 (global step 102)"
    watch.record(torch.tensor(0.5), 3, 5, 105)
    watch.check()  # the next window starts clean
    watch.record(torch.tensor(-math.inf, dtype=torch.bfloat16), 4, 0, 106)
    with pytest.raises(NonFiniteLossError, match="loss is -inf at epoch 4, step 0"):
        watch.check()


class Losses(Callback):
    """The loss of every step, read on the host (a test may wait for the device)."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        self.losses.append((trainer.global_step, float(outputs["loss"])))


def test_a_diverging_run_stops_at_the_next_check_naming_the_step_it_diverged(tmp_path: Path) -> None:
    """The loss is checked at the logging interval (10 steps) and the epoch's end, not every step: the run trains
    on to the next check and stops there, naming the step whose loss first became non-finite; the last checkpoint
    is the one from before the first step."""
    losses = Losses()
    with pytest.raises(TrainingError) as err:
        fit(spec(lr=1e12, opt="sgd", samples=512), tmp_path / "run", progress=False, callbacks=[losses])
    first_bad = next(i for i, (_, loss) in enumerate(losses.losses) if not math.isfinite(loss))
    last_step = losses.losses[-1][0]
    assert last_step % 10 == 0 and last_step > first_bad  # it stopped at a check, after the bad step
    message = str(err.value.problems[0])
    assert f"at epoch 0, step {first_bad} (global step {first_bad})" in message
    weights = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@needs_cuda
def test_a_cuda_run_trains_in_bf16_with_tf32_and_cudnn_benchmarking(tmp_path: Path) -> None:
    before = _numerics()
    seen = Numerics()
    fit(spec("accelerator: cuda"), tmp_path / "run", progress=False, test=False, callbacks=[seen])
    native = torch.cuda.get_device_capability()[0] >= 8
    assert seen.seen["precision"] == ("bf16-mixed" if native else "32-true")
    assert seen.seen["logits"] == (torch.bfloat16 if native else torch.float32)
    assert (seen.seen["device"], seen.seen["matmul"], seen.seen["benchmark"]) == ("cuda", "high", True)
    assert _numerics() == before  # put back after the run


@needs_cuda
def test_a_deterministic_cuda_run_keeps_ieee_matmuls_and_fixed_kernels(tmp_path: Path) -> None:
    seen = Numerics()
    fit(spec("accelerator: cuda\ndeterministic: true"), tmp_path / "run", progress=False, test=False, callbacks=[seen])
    assert (seen.seen["matmul"], seen.seen["benchmark"], seen.seen["deterministic"]) == ("highest", False, True)


class SyncWindow(Callback):
    """Make any host synchronisation an error from the start of each training step to its end, from the fourth
    step on (the first ones compile, benchmark and allocate); the loss checks run after the window."""

    def __init__(self) -> None:
        self.windows = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, index: int) -> None:
        if index >= 3:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if torch.cuda.get_sync_debug_mode() != 0:
            torch.cuda.set_sync_debug_mode(0)
            self.windows += 1


@needs_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_a_cuda_training_step_never_waits_for_the_device(tmp_path: Path, compile: bool) -> None:
    window = SyncWindow()
    extra = "accelerator: cuda" + ("\ncompile: true" if compile else "")
    try:
        fit(spec(extra, samples=512), tmp_path / "run", progress=False, test=False, callbacks=[window])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert window.windows == 512 // 16 - 3
