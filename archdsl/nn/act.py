"""Activation functions by name."""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "make_act"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
}


def make_act(name: str) -> nn.Module:
    """A fresh activation module (in place where torch offers it)."""
    return ACTIVATIONS[name](inplace=True) if name in ("relu", "silu", "hardswish") else ACTIVATIONS[name]()
