"""Where a model tensor comes from when the checkpoint holds it in another layout: the checkpoint's key and a pure
function on the tensor (a map names most tensors by key alone; :class:`Source` is for the few that need more)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Names", "Shape", "Source", "Transform"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Transform:
    """A pure function from the checkpoint's tensor to the model's, with its effect on the shape (matching is
    torch-free: shapes are checked against ``shape(file shape)`` before any tensor is read)."""

    what: str
    """What it does, for messages: ``per-head [k; v] -> all keys, then all values``."""
    tensor: Callable[[Any], Any]
    """The checkpoint's tensor -> the model's (a ``torch.Tensor`` both; never in place)."""
    shape: Callable[[Shape], Shape] = lambda shape: shape
    """The checkpoint's shape -> the transformed shape (the identity for a reordering)."""


@dataclass(frozen=True)
class Source:
    """A model tensor's checkpoint key and the transform its tensor goes through (applied after every check)."""

    key: str
    transform: Transform | None = None


Names = dict[str, str | Source] | str
"""A part's tensors, its module-local name -> the checkpoint's key (or :class:`Source`); or why the map cannot name
them."""
