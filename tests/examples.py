"""Small full specs that place each registered kind's example in a model (used by the contract tests)."""

from __future__ import annotations

import copy
from typing import Any

from archdsl import kinds
from archdsl.kinds import KindRegistry

REGISTRIES: dict[str, KindRegistry[kinds.Kind[Any]]] = {
    role: registry
    for role, registry in kinds.REGISTRIES.items()
    if role != "dataset"  # the model parts
}

_STEM = {"type": "conv", "channels": 16, "kernel_size": 3, "stride": 1}
_STAGE = {"channels": 32, "stride": 2, "blocks": [{"type": "bottleneck", "repeat": 1}]}
_HEAD = {"type": "classifier", "num_classes": 10}


def example_spec(registry: str, name: str) -> dict[str, Any]:
    """A 3x32x32 model using kind ``name`` of ``registry`` as its example says."""
    kind = REGISTRIES[registry].get(name)
    assert kind.example is not None, f"{registry} '{name}' has no example"
    ex = copy.deepcopy(dict(kind.example))
    stem, stages, head = _STEM, [_STAGE], _HEAD
    if registry == "stem":
        stem = ex
    elif registry in ("block", "transition"):
        stages = [ex]
    elif registry == "mixer":
        block = {"type": "bottleneck", "width": 16, "repeat": 2, "mixer": ex}
        stages = [{"channels": 64, "stride": 2, "blocks": [block]}]
    elif registry == "attention":
        block = {"type": "bottleneck", "width": 8, "repeat": 2, "attention": ex}
        stages = [{"channels": 32, "stride": 2, "blocks": [block]}]
    elif registry == "head":
        head = ex
    return {
        "version": 1,
        "name": f"example_{registry}_{name}",
        "input": {"channels": 3, "size": 32},
        "stem": copy.deepcopy(stem),
        "stages": copy.deepcopy(stages),
        "head": copy.deepcopy(head),
    }


def all_kinds() -> list[tuple[str, str]]:
    """Every registered kind that has an example (``attention: none`` has nothing to build)."""
    return [(reg, name) for reg, table in REGISTRIES.items() for name, kind in table.items() if kind.example]
