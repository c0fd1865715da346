"""The conv stem (``ConvStem``: ``0`` = ConvBN, ``1`` = max pool) is a ResNet's ``conv1`` and ``bn1``."""

from __future__ import annotations

from archdsl.weights.rules.rule import RenameRule

KEY = "stem.conv"
RULE = RenameRule((("0.0.", "conv1."), ("0.1.", "bn1.")))
