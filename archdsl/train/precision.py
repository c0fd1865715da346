"""``train.precision`` as Lightning takes it, decided where the run trains.

``auto`` (the default) is ``bf16-mixed`` on a CUDA device that computes in bfloat16 natively (compute capability
8.0 and up, or ROCm), and ``32`` on every other device (the CPU, Apple's MPS, older GPUs, which only emulate
bfloat16). The spec keeps ``auto``: a checkpoint or trial record says what was asked, and the same spec trains
in bfloat16 on a GPU node and in float32 on a laptop.
"""

from __future__ import annotations

from typing import Literal

from archdsl.errors import SpecError
from archdsl.spec.train import TrainSpec

__all__ = ["PRECISION", "Device", "lightning_precision", "resolve_precision", "trains_on"]

PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
"""The spec's explicit precisions, by Lightning's names for them."""

Device = Literal["cpu", "cuda", "mps"]


def trains_on(accelerator: str) -> Device:
    """The kind of device Lightning trains on for ``accelerator`` on this machine (``gpu`` and ``auto``: CUDA when
    present, else MPS; ``auto`` then the CPU)."""
    import torch

    if accelerator in ("cpu", "cuda", "mps"):
        return accelerator  # type: ignore[return-value]
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cuda" if accelerator == "gpu" else "cpu"


def lightning_precision(precision: str, device: Device, *, native_bf16: bool) -> str:
    """Lightning's ``precision`` for the spec's ``train.precision`` on ``device``; ``native_bf16``: the (CUDA)
    device computes in bfloat16 natively."""
    if precision == "auto":
        return "bf16-mixed" if device == "cuda" and native_bf16 else "32-true"
    if precision == "16-mixed" and device == "cpu":
        raise SpecError.at(
            "train.precision", "16-mixed needs a CUDA device and this run trains on the CPU; use auto, bf16-mixed or 32"
        )
    return PRECISION[precision]


def resolve_precision(train: TrainSpec, accelerator: str, devices: int | list[int] | str) -> str:
    """Lightning's ``precision`` for ``train`` on the ``accelerator`` and ``devices`` a Trainer gets."""
    device = trains_on(accelerator)
    return lightning_precision(train.precision, device, native_bf16=device == "cuda" and _native_bf16(devices))


def _native_bf16(devices: int | list[int] | str) -> bool:
    """Whether the first CUDA device the run uses has bfloat16 arithmetic (not emulated)."""
    import torch

    if not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return True
    index = devices[0] if isinstance(devices, list) and devices else 0
    return torch.cuda.get_device_capability(index)[0] >= 8
