"""UCI handwritten digits (scikit-learn's ``load_digits``): the offline default dataset.

1,797 8x8 grey images of 10 classes, resized (bilinear) to the spec's input size and repeated to its
channels; stratified 60/20/20 split with seed 0.
"""

from __future__ import annotations

from typing import Literal

from archdsl.datasets.defaults import numbered_classes
from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["DigitsData"]


class DigitsData(DataSpecBase):
    """UCI handwritten digits shipped with scikit-learn: 1,797 8x8 images, 10 classes, split 60/20/20 (seed 0)."""

    name: Literal["digits"]
    augment: bool = True
    """Random shifts of up to 1/8 of the image during training."""


DATASETS.add(
    DatasetKind.of(
        DigitsData,
        "archdsl.train.data.digits:digits_datamodule",
        "archdsl.train.data.digits:digits_preprocessing",
        numbered_classes,
        train_images=lambda spec: 1077,  # the 60% of 1,797 the stratified split trains on
    ),
)
