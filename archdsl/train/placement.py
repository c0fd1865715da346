"""Where a run trains: ``--device cpu|cuda|cuda:N`` on top of the spec's ``train.accelerator``/``devices``.

A worker owns one device, or a DDP group of ``train.devices`` processes for a multi-GPU trial (the GPUs
it may use are those in ``CUDA_VISIBLE_DEVICES``). Several processes train with Lightning's ``ddp_spawn``
strategy: a worker cannot be re-executed from its command line the way Lightning's default ``ddp``
launcher re-executes scripts, and spawning keeps every rank inside the trial that started it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from archdsl.errors import SpecError, UsageError
from archdsl.spec.train import TrainSpec

__all__ = ["Placement", "device_name", "parse_device", "require_device"]


@dataclass(frozen=True)
class Placement:
    """A device choice from the command line."""

    accelerator: str
    """``cpu`` or ``gpu``."""
    index: int | None = None
    """``cuda:N``: this GPU only."""

    def __str__(self) -> str:
        if self.accelerator == "cpu":
            return "cpu"
        return "cuda" if self.index is None else f"cuda:{self.index}"

    def trainer_args(self, train: TrainSpec) -> tuple[str, int | list[int] | str, int]:
        """``(accelerator, devices, processes)`` for ``lightning.Trainer``."""
        count = train.devices if isinstance(train.devices, int) else 1
        if self.index is not None:
            if count > 1:
                raise SpecError.at(
                    "train.devices",
                    f"--device {self} names one GPU but the trial trains on train.devices={count}; "
                    "give --device cuda and list the GPUs in CUDA_VISIBLE_DEVICES",
                )
            return "gpu", [self.index], 1
        if self.accelerator == "gpu" and train.devices == "auto":  # every GPU the worker may use
            import torch

            count = max(1, torch.cuda.device_count())
        return self.accelerator, count, count


def spec_trainer_args(train: TrainSpec) -> tuple[str, int | list[int] | str, int]:
    """The spec's own choice when no ``--device`` is given; ``auto`` devices count as one process
    unless CUDA shows several (Lightning then uses every visible GPU)."""
    processes = train.devices if isinstance(train.devices, int) else 1
    if train.devices == "auto" and train.accelerator in ("auto", "cuda", "gpu"):
        import torch

        processes = max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    return train.accelerator, train.devices, processes


def device_name(placement: Placement | None, accelerator: str) -> str:
    """The device a run uses, as torch names it: ``cpu``, ``cuda`` or ``cuda:N`` (the ``--device`` choice, else
    the spec's ``train.accelerator``, ``auto`` resolved to what this machine has)."""
    if placement is not None:
        return str(placement)
    if accelerator in ("cuda", "gpu"):
        return "cuda"
    if accelerator == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


CUDA_HINT = (
    "install torch's CUDA build on GPU nodes (on Linux x86-64 `pip install torch` from PyPI is one; docs/cluster.md, "
    "'GPU clusters', says more), or train on the CPU with --device cpu"
)


def require_device(placement: Placement | None, accelerator: str) -> None:
    """Refuse CUDA where torch cannot use it, before any study or run directory is touched (without this, every
    trial of a worker on a CPU-only torch died in Lightning with ``No supported gpu backend found!``)."""
    wants = placement.accelerator == "gpu" if placement is not None else accelerator in ("cuda", "gpu")
    if not wants:
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = placement.index if placement is not None else None
    if visible and (index is None or index < visible):
        return
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU build)"
    seen = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    message = (
        f"{'cuda:' + str(index) if index is not None else 'cuda'} needs a CUDA build of torch and a visible GPU: "
        f"torch {torch.__version__} here has {build} and sees {visible} GPU(s) (CUDA_VISIBLE_DEVICES={seen}); "
        f"{CUDA_HINT}"
    )
    if placement is not None:
        raise UsageError.option("--device", message)
    raise SpecError.at("train.accelerator", message)


_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(text: str) -> Placement:
    """``cpu``, ``cuda`` or ``cuda:N``."""
    m = _DEVICE.match(text)
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise UsageError.option("--device", f"a device is cpu, cuda or cuda:N, got '{text}'")
    if m.group(1) == "cpu":
        return Placement("cpu")
    return Placement("gpu", int(m.group(2)) if m.group(2) is not None else None)
