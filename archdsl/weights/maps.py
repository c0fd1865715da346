"""How a checkpoint names the tensors of each part: archdsl's own names, or a ResNet's (timm, torchvision).

timm's and torchvision's ``resnet50`` name their tensors alike (``conv1``, ``bn1``, ``layer{1-4}.{k}.conv1``,
``downsample.0``, ``fc``; ``tests/data/timm/*.json``); the per-kind renaming is in :mod:`archdsl.weights.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from archdsl.registry import Registry
from archdsl.weights.parts import Part
from archdsl.weights.rules import RULES, rule_key

__all__ = ["MAPS", "CheckpointMap", "Names"]

Names = dict[str, str] | str
"""A part's tensors, its module-local name -> the checkpoint's key; or why the map cannot name them."""


class CheckpointMap(Protocol):
    def prefix(self, part: Part) -> str:
        """The checkpoint's key prefix of the part's tensors (keys under it belong to the part; ``""``: none)."""
        ...

    def stage_prefix(self, stage: int) -> str:
        """The checkpoint's key prefix of every tensor of a stage (the keys of a stage left out are not unexpected)."""
        ...

    def names(self, part: Part, local: list[str]) -> Names:
        """The checkpoint keys of the part's tensors named ``local`` (module-local names), or a refusal."""
        ...

    def keys(self, state: Mapping[str, object]) -> dict[str, str]:
        """The file's keys as the map reads them -> the file's own keys."""
        ...


@dataclass(frozen=True)
class ArchdslMap:
    """archdsl's own names (an exported ``weights.safetensors``; a ``best.ckpt``, whose ``backbone.`` is dropped)."""

    def prefix(self, part: Part) -> str:
        return f"{part.module}."

    def stage_prefix(self, stage: int) -> str:
        return f"stages.{stage}."

    def names(self, part: Part, local: list[str]) -> Names:
        return {name: f"{part.module}.{name}" for name in local}

    def keys(self, state: Mapping[str, object]) -> dict[str, str]:
        lightning = "backbone."
        if any(key.startswith(lightning) for key in state):
            return {key[len(lightning) :]: key for key in state if key.startswith(lightning)}
        return {key: key for key in state}


@dataclass(frozen=True)
class ResNetMap:
    """timm's or torchvision's ResNet names: the stem is ``conv1``/``bn1``, block k of stage i ``layer{i+1}.{k}``,
    the head ``fc``."""

    name: str

    def prefix(self, part: Part) -> str:
        return f"layer{part.stage + 1}.{part.block}." if part.stage is not None else ""

    def stage_prefix(self, stage: int) -> str:
        return f"layer{stage + 1}."

    def names(self, part: Part, local: list[str]) -> Names:
        node = part.node
        key = rule_key(node.role, node.type)
        if key not in RULES:
            return f"the {self.name} map has no names for a {node.role} of type {node.type} (it names {_known()})"
        rule = RULES.get(key)
        refusal = rule.refuses(node)
        if refusal is not None:
            return f"the {self.name} map cannot name this {node.type} {node.role}: {refusal}"
        prefix, names = self.prefix(part), {}
        for name in local:
            theirs = rule.rename(name)
            if theirs is None:
                return f"the {self.name} map has no name for its tensor {name}"
            names[name] = prefix + theirs
        return names

    def keys(self, state: Mapping[str, object]) -> dict[str, str]:
        return {key: key for key in state}


def _known() -> str:
    return ", ".join(RULES.names())


MAPS: Registry[CheckpointMap] = Registry("checkpoint map")
"""``train.init.map`` -> how the checkpoint names its tensors."""
MAPS.register("archdsl", ArchdslMap())
MAPS.register("timm", ResNetMap("timm"))
MAPS.register("torchvision", ResNetMap("torchvision"))
