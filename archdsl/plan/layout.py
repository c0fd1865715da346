"""The memory layout each kind's module needs, as the kind declares it (``Kind(..., layout=...)``), per device, and
the layout a whole model is built in on a device.

Registering a kind records its declaration here (:func:`declare_layout`), so the plan reads the layout of a node
from its role and type without naming a kind, and a plug-in's kind declares one as a built-in does. ``nchw``
marks a kernel that cuts NCHW maps into blocks and heads (halo and global attention reshape the NCHW memory on
the CPU); a part of any other kind runs as well channels-last (``any``).

A declaration holds on every device unless the kind declares otherwise for one device type
(``declare_layout(..., device="cuda")``): halo and global attention need NCHW only on the CPU, since on CUDA
they copy their operands into the fused kernel's (batch, heads, tokens, dim) layout from either memory format
(:mod:`archdsl.nn.relpos`). :func:`channels_last` applies one rule on every device to the layouts declared for
it: NHWC unless ``nchw`` parts carry at least :data:`NCHW_SHARE` of the planned FLOPs. On the CPU that is
:attr:`~archdsl.plan.shapes.ModelPlan.channels_last`, the layout models are built in (measured with
``benchmarks/models.py``: ResNet and VOLO steps faster NHWC, BoTNet's unchanged, HaloNet's slower); on CUDA
every zoo model comes out NHWC, which cuDNN's bf16 convolutions are written for (``python -m benchmarks.gpu``
times both layouts of HaloNet and BoTNet on the GPU and fails its row if the rule picks the slower one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

__all__ = ["NCHW_SHARE", "Layout", "PlannedNode", "channels_last", "declare_layout", "layout_of"]

Layout = Literal["any", "nchw"]
"""``nchw``: the module's kernel needs NCHW memory; ``any``: channels-last serves as well."""

NCHW_SHARE = 0.2
"""A model is built NCHW on a device where its ``nchw`` parts carry at least this share of the planned FLOPs."""

_DECLARED: dict[tuple[str, str], Layout] = {}
_ON_DEVICE: dict[tuple[str, str, str], Layout] = {}


class PlannedNode(Protocol):
    """What :func:`channels_last` reads of a plan node (:class:`~archdsl.plan.shapes.Node`)."""

    @property
    def role(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def flops(self) -> int: ...
    @property
    def children(self) -> Sequence[object]: ...


def declare_layout(role: str, type: str, layout: Layout, device: str | None = None) -> None:
    """Record that the kind ``type`` of ``role`` (``mixer``, ``block``, ...) needs ``layout``: on every device
    (``device=None``, what registering a kind records) or on the device type ``device`` (``cuda``) alone."""
    if device is None:
        _DECLARED[(role, type)] = layout
    else:
        _ON_DEVICE[(role, type, device)] = layout


def layout_of(role: str, type: str, device: str = "cpu") -> Layout:
    """The layout a node of ``role`` and ``type`` needs on the device type ``device``: its kind's declaration for
    that device, else its declaration for every device, ``any`` for a node no kind registered (a stage's
    position embedding)."""
    return _ON_DEVICE.get((role, type, device), _DECLARED.get((role, type), "any"))


def channels_last(nodes: Iterable[PlannedNode], device: str = "cpu") -> bool:
    """Whether a model of these plan nodes (``plan.nodes()``, every depth) runs channels-last on the device type
    ``device``: unless the leaves whose kinds need ``nchw`` there carry :data:`NCHW_SHARE` of the leaves' FLOPs."""
    leaves = [n for n in nodes if not n.children]
    total = sum(n.flops for n in leaves)
    nchw = sum(n.flops for n in leaves if layout_of(n.role, n.type, device) == "nchw")
    return total > 0 and nchw < NCHW_SHARE * total
