"""A basic block is a ResNet ``BasicBlock``: ``conv1/bn1``, ``conv2/bn2``, ``downsample.0/1`` (shortcut)."""

from __future__ import annotations

from archdsl.weights.rules._mixer import plain_resnet_block
from archdsl.weights.rules.rule import RenameRule

KEY = "block.basic"
RULE = RenameRule(
    (
        ("conv1.0.", "conv1."),
        ("conv1.1.", "bn1."),
        ("conv2.0.", "conv2."),
        ("conv2.1.", "bn2."),
        ("shortcut.0.", "downsample.0."),
        ("shortcut.1.", "downsample.1."),
    ),
    plain_resnet_block,
)
