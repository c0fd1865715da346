"""How a checkpoint names the tensors of each part: archdsl's own names, a ResNet's (timm, torchvision), or one of
timm's families (ResNet, ByobNet: BoTNet and HaloNet, VOLO), which the ``timm`` map tells apart by the file's keys.

timm's and torchvision's ``resnet50`` name their tensors alike (``conv1``, ``bn1``, ``layer{1-4}.{k}.conv1``,
``downsample.0``, ``fc``; ``tests/data/timm/*.json``); the per-kind renaming is in :mod:`archdsl.weights.rules`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from archdsl.registry import Registry
from archdsl.weights.families.byobnet import ByobNetMap
from archdsl.weights.families.plain import OneScheme
from archdsl.weights.families.volo import VoloMap
from archdsl.weights.parts import Part
from archdsl.weights.rules import RULES
from archdsl.weights.rules.rule import find_rule, name_tensors
from archdsl.weights.source import Names

__all__ = ["MAPS", "CheckpointMap", "MapChoice", "Names", "TimmMap"]


class CheckpointMap(Protocol):
    """How a file of one naming scheme names each part's tensors."""

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


class MapChoice(Protocol):
    """What ``train.init.map`` names: a map of one scheme (:class:`OneScheme`: itself), or one that tells a file's
    family by its keys (:class:`TimmMap`)."""

    def resolve(self, keys: Collection[str]) -> CheckpointMap | str:
        """The map that names the tensors of a file with these keys, or why none does."""
        ...


@dataclass(frozen=True)
class ArchdslMap(OneScheme):
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
class ResNetMap(OneScheme):
    """timm's or torchvision's ResNet names: the stem is ``conv1``/``bn1``, block k of stage i ``layer{i+1}.{k}``,
    the head ``fc``."""

    name: str

    def prefix(self, part: Part) -> str:
        return f"layer{part.stage + 1}.{part.block}." if part.stage is not None else ""

    def stage_prefix(self, stage: int) -> str:
        return f"layer{stage + 1}."

    def names(self, part: Part, local: list[str]) -> Names:
        node = part.node
        rule = find_rule(RULES, self.name, node)
        if isinstance(rule, str):
            return rule
        refusal = rule.refuses(node)
        if refusal is not None:
            return f"the {self.name} map cannot name this {node.type} {node.role}: {refusal}"
        return name_tensors(self.name, local, [rule], self.prefix(part))


@dataclass(frozen=True)
class TimmMap:
    """timm's names: which family a file is from is read from its keys (the first signature found, in order), then
    that family's map names every part."""

    families: tuple[tuple[str, str, CheckpointMap], ...] = ()
    """``(signature, family, map)``: a file with a key starting with ``signature`` is of ``family``."""

    def resolve(self, keys: Collection[str]) -> CheckpointMap | str:
        for signature, _, family in self.families:
            if any(key.startswith(signature) for key in keys):
                return family
        known = "; ".join(f"{family} (keys {signature}*)" for signature, family, _ in self.families)
        first = ", ".join(list(keys)[:3]) or "no keys"
        return f"the timm map reads the checkpoints of {known}; this file's keys are none of these (it starts {first})"


MAPS: Registry[MapChoice] = Registry("checkpoint map")
"""``train.init.map`` -> how the checkpoint names its tensors."""
MAPS.register("archdsl", ArchdslMap())
MAPS.register(
    "timm",
    TimmMap(
        (
            ("layer1.", "ResNet", ResNetMap("timm")),
            ("stages.0.0.conv1_1x1.", "ByobNet: BoTNet, HaloNet", ByobNetMap()),
            ("network.", "VOLO", VoloMap()),
        )
    ),
)
MAPS.register("torchvision", ResNetMap("torchvision"))
