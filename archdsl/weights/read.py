"""Read a checkpoint file into tensors by name: safetensors, or a ``torch.save`` state dict (also one nested under
``state_dict`` or ``model``, as Lightning and many training scripts save them). Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch

from archdsl.errors import SpecError
from archdsl.weights.check import FROM, file_problem

__all__ = ["read_checkpoint"]

_NESTED = ("state_dict", "model")
_SAFETENSORS_HEADER = 8
"""A safetensors file opens with its JSON header's length, 8 bytes little-endian, then ``{``."""


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` by name, on the CPU; a problem is a :class:`SpecError` at ``train.init.from``."""
    path = Path(path).expanduser()
    missing = file_problem(path)
    if missing is not None:
        raise SpecError.at(FROM, missing)
    try:
        state = _safetensors(path) if _is_safetensors(path) else _torch(path)
    except SpecError:
        raise
    except Exception as err:  # a damaged or foreign file: torch and safetensors raise many kinds
        raise SpecError.at(FROM, f"cannot read checkpoint '{path}': {type(err).__name__}: {err}") from None
    tensors = _state_dict(state)
    if tensors is None:
        raise SpecError.at(
            FROM,
            f"'{path}' must hold tensors by name (a state dict, also under 'state_dict' or 'model'), "
            f"it holds a {type(state).__name__}",
        )
    return tensors


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(_SAFETENSORS_HEADER + 1)
    return len(head) == _SAFETENSORS_HEADER + 1 and head[-1:] == b"{"


def _safetensors(path: Path) -> object:
    if importlib.util.find_spec("safetensors") is None:
        raise SpecError.at(
            FROM, f"'{path}' is a safetensors file; reading it needs the safetensors package (pip install safetensors)"
        )
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _torch(path: Path) -> object:
    return torch.load(path, map_location="cpu", weights_only=True)


def _state_dict(state: object) -> dict[str, torch.Tensor] | None:
    if not isinstance(state, Mapping):
        return None
    if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return dict(state)
    for key in _NESTED:
        if key in state:
            return _state_dict(state[key])
    return None
