"""timm's ByobNet names (``timm.models.byobnet``: BoTNet as ``benchmarks.models.bot50_timm`` composes it, HaloNet):
the stem is ``stem.conv1.{conv,bn}``, block k of stage i ``stages.{i}.{k}``, with ``conv1_1x1``, ``conv2_kxk``
(a conv mixer) or ``self_attn`` + ``post_attn`` (an attention mixer), ``conv3_1x1``, ``shortcut``; the head
``head.fc``.

One table per archdsl part kind, and per bottleneck mixer kind: the mixer's names and the transforms its tensors
need. timm's ``HaloAttn.kv`` holds each head's keys and values together (``[k_0; v_0; k_1; v_1; ...]``), archdsl's
all keys then all values; timm's ``BottleneckAttn`` names its tables ``pos_embed.{height,width}_rel`` and holds them
as archdsl does when built with ``scale_pos_embed=True`` (``bot50_timm``; timm's registered BoTNets scale the
position logits otherwise and have no archdsl counterpart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archdsl.plan.shapes import Node
from archdsl.registry import Registry
from archdsl.weights.families.plain import OneScheme
from archdsl.weights.parts import Part
from archdsl.weights.rules.rule import RenameRule, find_rule, name_tensors
from archdsl.weights.source import Names, Transform

__all__ = ["MIXERS", "PARTS", "ByobNetMap", "kv_per_head_to_grouped"]

_BN = (("0.", "conv."), ("1.", "bn."))


def _conv_bn(ours: str, theirs: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{ours}{a}", f"{theirs}{b}") for a, b in _BN)


@dataclass(frozen=True)
class MixerNames:
    """A bottleneck mixer kind's names in a ByobNet block, and the transforms of its tensors."""

    rule: RenameRule
    """``mixer.*`` and ``mixer_norm.*`` -> timm's names."""
    transforms: Callable[[Node], Mapping[str, Transform]] = lambda node: {}
    """The mixer's plan node -> transforms by archdsl's block-local tensor name."""


def kv_per_head_to_grouped(heads: int, qk_dim: int, v_dim: int) -> Transform:
    """timm's ``HaloAttn.kv`` rows, per head ``[k_h; v_h]``, -> archdsl's: every head's keys, then every head's
    values."""

    def tensor(t: Any) -> Any:
        import torch

        rows = t.reshape(heads, qk_dim + v_dim, *t.shape[1:])
        k, v = rows[:, :qk_dim], rows[:, qk_dim:]
        return torch.cat([k.reshape(heads * qk_dim, *t.shape[1:]), v.reshape(heads * v_dim, *t.shape[1:])])

    return Transform(f"per-head [k; v] ({heads} heads) -> all keys, then all values", tensor)


def _halo_transforms(node: Node) -> Mapping[str, Transform]:
    kw = node.recipe.kwargs
    heads = int(kw["num_heads"])
    transform = kv_per_head_to_grouped(heads, int(kw["channels"]) // heads, int(kw["value_channels"]) // heads)
    return {"mixer.kv.weight": transform}


def _halo_refuses(node: Node) -> str | None:
    if node.recipe.kwargs.get("compat", "paper") != "timm":
        return "timm's HaloAttn weights compute timm's function only in the halo mixer's timm mode; set compat: timm"
    return None


_NORM = (("mixer_norm.", "post_attn."),)
_TABLES = (
    ("mixer.relpos.table_h", "self_attn.pos_embed.height_rel"),
    ("mixer.relpos.table_w", "self_attn.pos_embed.width_rel"),
)

MIXERS: Registry[MixerNames] = Registry("ByobNet mixer names")
"""A bottleneck's mixer kind -> its names in a ByobNet block."""
MIXERS.register("conv", MixerNames(RenameRule((("mixer.", "conv2_kxk.conv."), ("mixer_norm.", "conv2_kxk.bn.")))))
MIXERS.register("global_attention", MixerNames(RenameRule((("mixer.qkv.", "self_attn.qkv."), *_TABLES, *_NORM))))
MIXERS.register(
    "halo",
    MixerNames(
        RenameRule((("mixer.q.", "self_attn.q."), ("mixer.kv.", "self_attn.kv."), *_TABLES, *_NORM), _halo_refuses),
        _halo_transforms,
    ),
)

_BOTTLENECK = (
    *_conv_bn("reduce.", "conv1_1x1."),
    *_conv_bn("expand.", "conv3_1x1."),
    *_conv_bn("shortcut.", "shortcut."),
)

PARTS: Registry[RenameRule] = Registry("ByobNet part names")
"""A part's ``role.kind`` -> its names in a ByobNet (a bottleneck's mixer: :data:`MIXERS`)."""
PARTS.register("stem.conv", RenameRule(_conv_bn("0.", "stem.conv1.")))
PARTS.register("block.bottleneck", RenameRule(_BOTTLENECK))
PARTS.register("head.classifier", RenameRule((("fc.", "head.fc."),)))


@dataclass(frozen=True)
class ByobNetMap(OneScheme):
    """timm's ByobNet names (see the module)."""

    name: str = "timm ByobNet"

    def prefix(self, part: Part) -> str:
        if part.stage is not None:
            return f"stages.{part.stage}.{part.block}."
        return "stem." if part.module == "stem" else "head."

    def stage_prefix(self, stage: int) -> str:
        return f"stages.{stage}."

    def names(self, part: Part, local: list[str]) -> Names:
        node = part.node
        part_rule = find_rule(PARTS, self.name, node)
        if isinstance(part_rule, str):
            return part_rule
        rules = [part_rule]
        transforms: dict[str, Transform] = {}
        for child in node.children:
            if child.role == "mixer":
                if child.type not in MIXERS:
                    known = ", ".join(MIXERS.names())
                    return f"the {self.name} map has no names for a {child.type} mixer (it names {known})"
                mixer = MIXERS.get(child.type)
                rules.append(mixer.rule)
                transforms.update(mixer.transforms(child))
            elif child.role == "attention":
                return f"the {self.name} map has no names for an attached attention ({child.type})"
        for rule in rules:
            refusal = rule.refuses(node if rule is rules[0] else _mixer(node))
            if refusal is not None:
                return f"the {self.name} map cannot name this {node.type} {node.role}: {refusal}"
        stage = f"stages.{part.stage}.{part.block}." if part.stage is not None else ""  # stem, head: in the rule
        return name_tensors(self.name, local, rules, stage, transforms)


def _mixer(node: Node) -> Node:
    return next(child for child in node.children if child.role == "mixer")
