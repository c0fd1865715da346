"""``eager``: the ``nn.Module`` itself, run by PyTorch op by op (what ``archdsl train`` and a Python deployment
that imports ``model.py`` run)."""

from __future__ import annotations

import torch
from torch import nn

from archdsl.compiler.runtimes.registry import Runner, Runtime, register

__all__ = ["prepare"]


def prepare(model: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """The module called on ``x``; torch's intra-op threads are the caller's ``torch.set_num_threads``."""
    return lambda: model(x)


register(Runtime("eager", "the nn.Module run op by op by PyTorch (a Python deployment of model.py)", prepare))
