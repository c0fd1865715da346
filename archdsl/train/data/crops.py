"""Where an image is cropped: random resized crops for training, a centred square for evaluation.

Boxes are ``(left, top, width, height)`` in the image's own pixels, chosen from its size alone, before it is
decoded, so the decoder can be told how small it may decode (:func:`archdsl.train.data.decode.reduction`).
"""

from __future__ import annotations

import math
import random

__all__ = ["CENTER_FRACTION", "CROP_RATIO", "CROP_SCALE", "Box", "center_box", "random_resized_box", "snap"]

Box = tuple[int, int, int, int]

CROP_SCALE = (0.35, 1.0)
"""The fraction of the image's area a training crop covers, uniform in this range."""
CROP_RATIO = (3 / 4, 4 / 3)
"""A training crop's width / height, log-uniform in this range."""
CENTER_FRACTION = 0.875
"""An evaluation crop's side as a fraction of the image's shorter side (224 of 256)."""


def random_resized_box(width: int, height: int, rng: random.Random | None = None) -> Box:
    """A crop of ``CROP_SCALE`` of the area at a ``CROP_RATIO`` aspect, clipped to the image, placed uniformly."""
    r = rng or random
    area = width * height * r.uniform(*CROP_SCALE)
    ratio = math.exp(r.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
    w = min(width, max(1, round(math.sqrt(area * ratio))))
    h = min(height, max(1, round(math.sqrt(area / ratio))))
    return r.randint(0, width - w), r.randint(0, height - h), w, h


def center_box(width: int, height: int) -> Box:
    """The centred square of side ``CENTER_FRACTION`` of the shorter side (resize-then-centre-crop in one)."""
    side = max(1, round(min(width, height) * CENTER_FRACTION))
    return (width - side) // 2, (height - side) // 2, side, side


def snap(box: Box, step: int, width: int, height: int) -> Box:
    """``box`` with every edge moved to the nearest multiple of ``step`` inside the image's whole ``step`` blocks,
    so that a decode scaled by ``1 / step`` holds it exactly (edges move by at most ``step / 2`` pixels)."""
    if step == 1:
        return box
    left, top, w, h = box
    x0, y0 = round(left / step), round(top / step)
    x1 = max(x0 + 1, min(round((left + w) / step), width // step))
    y1 = max(y0 + 1, min(round((top + h) / step), height // step))
    return x0 * step, y0 * step, (x1 - x0) * step, (y1 - y0) * step
