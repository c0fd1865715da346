"""Activation functions by name."""

from __future__ import annotations

from typing import Literal

from torch import nn

__all__ = ["ACTIVATIONS", "ActName", "make_act"]

ActName = Literal["relu", "silu", "gelu", "hardswish"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
}


def make_act(name: str) -> nn.Module:
    return ACTIVATIONS[name](inplace=True) if name in ("relu", "silu", "hardswish") else ACTIVATIONS[name]()
