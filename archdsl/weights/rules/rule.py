"""A part kind's renaming from archdsl's module names to a ResNet checkpoint's (timm, torchvision)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from archdsl.plan.shapes import Node
from archdsl.registry import Registry
from archdsl.weights.source import Names, Source, Transform

__all__ = ["RenameRule", "find_rule", "name_tensors", "rule_key"]


def rule_key(role: str, kind: str) -> str:
    """``block.bottleneck``: a part's role and its kind."""
    return f"{role}.{kind}"


@dataclass(frozen=True)
class RenameRule:
    """Leading module names, archdsl's -> the checkpoint's, for one part kind."""

    prefixes: tuple[tuple[str, str], ...]
    """``(archdsl prefix, checkpoint prefix)`` pairs, both ending in ``.``; the first that starts a name renames it."""
    refuses: Callable[[Node], str | None] = lambda node: None
    """Why a part of this kind has no ResNet names (a halo mixer, an attached attention), or None."""

    def checkpoint_key(self, name: str) -> str | None:
        """The checkpoint's name of the part-local tensor ``name``, or None when no prefix renames it."""
        for ours, theirs in self.prefixes:
            if name.startswith(ours):
                return theirs + name[len(ours) :]
        return None


def find_rule(rules: Registry[RenameRule], who: str, node: Node) -> RenameRule | str:
    """The rule of ``node``'s role and kind in ``rules``, or why map ``who`` has none."""
    key = rule_key(node.role, node.type)
    if key not in rules:
        known = ", ".join(rules.names())
        return f"the {who} map has no names for a {node.role} of type {node.type} (it names {known})"
    return rules.get(key)


def name_tensors(
    who: str,
    local: list[str],
    rules: Sequence[RenameRule],
    prefix: str,
    transforms: Mapping[str, Transform] | None = None,
) -> Names:
    """The checkpoint keys (``prefix`` + the first rule's renaming; a :class:`Source` where ``transforms`` has the
    tensor) of a part's tensors named ``local``; or, where no rule renames one, why map ``who`` cannot name it."""
    names: dict[str, str | Source] = {}
    for name in local:
        theirs = next((t for rule in rules if (t := rule.checkpoint_key(name)) is not None), None)
        if theirs is None:
            return f"the {who} map has no name for its tensor {name}"
        transform = (transforms or {}).get(name)
        names[name] = Source(prefix + theirs, transform) if transform is not None else prefix + theirs
    return names
