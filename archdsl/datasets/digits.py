"""UCI handwritten digits (scikit-learn's ``load_digits``): the offline default dataset.

1,797 8x8 grey images of 10 classes, resized (bilinear) to the spec's input size and repeated to its
channels; stratified 60/20/20 split with seed 0.
"""

from __future__ import annotations

from typing import Any, Literal

from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import SpecModel

__all__ = ["DigitsData"]


class DigitsData(SpecModel):
    """UCI handwritten digits shipped with scikit-learn: 1,797 8x8 images, 10 classes, split 60/20/20 (seed 0)."""

    name: Literal["digits"]
    augment: bool = True
    """Random shifts of up to 1/8 of the image during training."""


def _preprocessing(spec: DigitsData, channels: int, size: int) -> dict[str, Any]:
    from archdsl.train.data.digits import digits_normalisation  # the statistics come from the images

    mean, std = digits_normalisation(channels, size)
    return {"scale": "pixel / 255 (dark digit strokes are high values, as in the UCI digits)", "mean": mean,
            "std": std, "invert": True}  # fmt: skip


DATASETS.register(
    "digits",
    DatasetKind("digits", DigitsData, "archdsl.train.data.digits:digits_datamodule", _preprocessing,
                lambda spec, n: [str(i) for i in range(n)]),
)  # fmt: skip
