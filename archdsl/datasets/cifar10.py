"""CIFAR-10 in its python pickle format in a local directory (nothing is downloaded)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import SpecModel

__all__ = ["CIFAR10_CLASSES", "Cifar10Data"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Cifar10Data(SpecModel):
    """CIFAR-10 in its python pickle format in a local directory (nothing is downloaded)."""

    name: Literal["cifar10"]
    root: str = Field(min_length=1)
    """Directory with ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (or a ``cifar-10-batches-py`` in it)."""
    val_size: int = Field(5000, ge=1)
    """Images held out of the training batches for validation (stratified, seed 0)."""
    augment: bool = True
    """Random crop with 4-px padding and horizontal flip during training."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes."""


DATASETS.add(
    DatasetKind.of(
        Cifar10Data,
        "archdsl.train.data.cifar10:cifar10_datamodule",
        "archdsl.train.data.cifar10:cifar10_preprocessing",
        lambda spec, n: list(CIFAR10_CLASSES),
        train_images=lambda spec: 50_000 - spec.val_size,
    ),
)
