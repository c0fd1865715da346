"""How timm and torchvision's ResNets name the tensors of each archdsl part kind, written once per kind.

A rule is keyed by the part's role and kind (``stem.conv``, ``block.bottleneck``, ``head.classifier``) and renames
the leading module names of the part's tensors: ``reduce.0.weight`` of a bottleneck is ``conv1.weight`` in a
ResNet's ``layer1.0``. Adding a kind is one new file here, imported below.
"""

from __future__ import annotations

from archdsl.registry import Registry
from archdsl.weights.rules.rule import RenameRule, rule_key

__all__ = ["RULES", "RenameRule", "rule_key"]

RULES: Registry[RenameRule] = Registry("weight-name rule")
"""ResNet (timm, torchvision) names of each part kind, keyed by :func:`rule_key`."""


def _register() -> None:
    from archdsl.weights.rules import basic, bottleneck, classifier, conv_stem

    for module in (basic, bottleneck, classifier, conv_stem):
        RULES.register(module.KEY, module.RULE)


_register()
