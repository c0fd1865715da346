"""What most datasets tell an exported model: pixels scaled to [0, 1] and unstandardised, classes numbered.

Datasets whose DataModule standardises or names its classes (digits, image folders, CIFAR-10) say so in
their own file; the rest name these.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PIXELS", "numbered_classes", "pixels"]

PIXELS = "archdsl.datasets.defaults:pixels"
"""The ``preprocessing`` entry of a dataset kind whose input is ``pixel / 255`` as it is."""


def pixels(spec: object, channels: int, size: int) -> dict[str, Any]:
    return {"scale": "pixel / 255", "mean": [0.0] * channels, "std": [1.0] * channels, "invert": "no"}


def numbered_classes(spec: object, n: int) -> list[str]:
    """``["0", ..., "n-1"]``."""
    return [str(i) for i in range(n)]
