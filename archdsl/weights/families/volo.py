"""timm's VOLO names (``timm.models.volo``): the stem is ``patch_embed.{conv.{0,1,3,4,6,7},proj}``; the trunk is
``network``, a list of block groups and ``Downsample`` layers (``network.1.proj``); the position embedding
``pos_embed`` is channels-last ``(1, H, W, C)``; the head is ``cls_token``, ``post_network.{i}``, ``norm``,
``head``, ``aux_head``.

timm splits a stage's transformer blocks into groups (``network.2``, ``network.3``, ... of VOLO-D1's 4, 8, 2)
that archdsl's spec does not record, so the map reads the file's keys as one stage after another: block groups up
to a ``Downsample`` are one stage, numbered through (``network.3.1`` of VOLO-D1 reads as ``stages.1.5``), the
``Downsample`` before stage s reads as ``stages.{s}.down``, ``pos_embed`` as ``stages.1.pos_embed`` (it is added
after the first downsample).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from archdsl.registry import Registry
from archdsl.weights.families.plain import OneScheme
from archdsl.weights.parts import Part
from archdsl.weights.rules import rule_key
from archdsl.weights.rules.rule import RenameRule, find_rule, name_tensors
from archdsl.weights.source import Names, Transform

__all__ = ["CHANNELS_LAST_TO_FIRST", "PARTS", "VoloMap", "read_network"]


def _to_channels_first(t: Any) -> Any:
    return t.permute(0, 3, 1, 2).contiguous()


CHANNELS_LAST_TO_FIRST = Transform(
    "channels-last (1, H, W, C) -> channels-first (1, C, H, W)",
    _to_channels_first,
    lambda s: (s[0], s[3], s[1], s[2]) if len(s) == 4 else s,
)
"""timm's ``pos_embed`` -> archdsl's."""

_STEM = (
    ("0.0.", "conv.0."),
    ("0.1.", "conv.1."),
    ("1.0.", "conv.3."),
    ("1.1.", "conv.4."),
    ("2.0.", "conv.6."),
    ("2.1.", "conv.7."),
    ("3.", "proj."),
)
_BLOCK = (("norm1.", "norm1."), ("attn.", "attn."), ("norm2.", "norm2."), ("mlp.", "mlp."))

PARTS: Registry[RenameRule] = Registry("VOLO part names")
"""A part's ``role.kind`` -> its names under the part's prefix (:meth:`VoloMap.prefix`)."""
PARTS.register("stem.patch_embed", RenameRule(_STEM))
PARTS.register("block.outlooker", RenameRule(_BLOCK))
PARTS.register("block.transformer", RenameRule(_BLOCK))
PARTS.register("transition.patch_merge", RenameRule((("", "proj."),)))
PARTS.register("pos_embed.pos_embed", RenameRule((("pos", "pos_embed"),)))
PARTS.register(
    "head.class_attention",
    RenameRule(
        (
            ("cls_token", "cls_token"),
            ("blocks.", "post_network."),
            ("norm.", "norm."),
            ("head.", "head."),
            ("aux_head.", "aux_head."),
        )
    ),
)

_TRANSFORMS: Mapping[str, Mapping[str, Transform]] = {"pos_embed.pos_embed": {"pos": CHANNELS_LAST_TO_FIRST}}
"""Per ``role.kind``: the part-local tensors whose checkpoint layout differs."""

_NETWORK = re.compile(r"network\.(\d+)\.(\d+|proj)\.(.*)")


def read_network(keys: Collection[str]) -> dict[str, str]:
    """The file's keys as the map reads them (see the module) -> the file's own keys."""
    groups: dict[int, set[str]] = {}
    for key in keys:
        if (m := _NETWORK.fullmatch(key)) is not None:
            groups.setdefault(int(m[1]), set()).add(m[2])
    stage, offset, where = 0, 0, {}
    for g in sorted(groups):
        if "proj" in groups[g]:
            stage, offset = stage + 1, 0
            where[g] = (stage, -1)
        else:
            where[g] = (stage, offset)
            offset += 1 + max(int(i) for i in groups[g])
    read = {}
    for key in keys:
        m = _NETWORK.fullmatch(key)
        if m is None:
            read["stages.1.pos_embed" if key == "pos_embed" else key] = key
            continue
        s, first = where[int(m[1])]
        block = "down" if m[2] == "proj" else str(first + int(m[2]))
        read[f"stages.{s}.{block}.{'proj.' if m[2] == 'proj' else ''}{m[3]}"] = key
    return read


@dataclass(frozen=True)
class VoloMap(OneScheme):
    """timm's VOLO names (see the module)."""

    name: str = "timm VOLO"

    def prefix(self, part: Part) -> str:
        if part.stage is None:
            return "patch_embed." if part.module == "stem" else ""
        if part.node.role == "transition":
            return f"stages.{part.stage}.down."
        if part.node.role == "pos_embed":
            return f"stages.{part.stage}."
        return f"stages.{part.stage}.{part.block}."

    def stage_prefix(self, stage: int) -> str:
        return f"stages.{stage}."

    def names(self, part: Part, local: list[str]) -> Names:
        node = part.node
        rule = find_rule(PARTS, self.name, node)
        if isinstance(rule, str):
            return rule
        transforms = _TRANSFORMS.get(rule_key(node.role, node.type), {})
        return name_tensors(self.name, local, [rule], self.prefix(part), transforms)

    def keys(self, state: Mapping[str, object]) -> dict[str, str]:
        return read_network(list(state))
