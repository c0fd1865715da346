"""A bottleneck with a conv mixer is a ResNet ``Bottleneck``: ``conv1/bn1`` (reduce), ``conv2/bn2`` (mixer),
``conv3/bn3`` (expand), ``downsample.0/1`` (shortcut)."""

from __future__ import annotations

from archdsl.weights.rules._mixer import plain_resnet_block
from archdsl.weights.rules.rule import RenameRule

KEY = "block.bottleneck"
RULE = RenameRule(
    (
        ("reduce.0.", "conv1."),
        ("reduce.1.", "bn1."),
        ("mixer.", "conv2."),
        ("mixer_norm.", "bn2."),
        ("expand.0.", "conv3."),
        ("expand.1.", "bn3."),
        ("shortcut.0.", "downsample.0."),
        ("shortcut.1.", "downsample.1."),
    ),
    plain_resnet_block,
)
