"""Count parameters and FLOPs of a built model on the meta device (no memory, no compute)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Measured", "measure"]


@dataclass(frozen=True)
class Measured:
    params: int
    flops: int
    output: tuple[int, ...]


def measure(model: nn.Module, input_shape: tuple[int, ...]) -> Measured:
    """Parameters, and FLOPs of one batch-1 forward as ``FlopCounterMode`` counts them.

    Build the model on ``meta`` first (``build_model(spec, device="meta")``): nothing is then computed.
    """
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    was_training = model.training
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = model.eval()(x)
    model.train(was_training)
    return Measured(params, counter.get_total_flops(), tuple(y.shape[1:]))
