"""The memory layout each kind's module needs, as the kind declares it (``Kind(..., layout=...)``).

Registering a kind records its declaration here (:func:`declare_layout`), so the plan reads the layout of a node
from its role and type without naming a kind, and a plug-in's kind declares one as a built-in does. ``nchw``
marks a kernel that cuts NCHW maps into blocks and heads (halo and global attention reshape the NCHW memory); a
part of any other kind runs as well channels-last (``any``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Layout", "declare_layout", "layout_of"]

Layout = Literal["any", "nchw"]
"""``nchw``: the module's kernel needs NCHW memory; ``any``: channels-last serves as well."""

_DECLARED: dict[tuple[str, str], Layout] = {}


def declare_layout(role: str, type: str, layout: Layout) -> None:
    """Record that the kind ``type`` of ``role`` (``mixer``, ``block``, ...) needs ``layout``."""
    _DECLARED[(role, type)] = layout


def layout_of(role: str, type: str) -> Layout:
    """The layout a node of ``role`` and ``type`` needs: its kind's declaration, ``any`` for a node no kind
    registered (a stage's position embedding)."""
    return _DECLARED.get((role, type), "any")
