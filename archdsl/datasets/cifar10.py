"""CIFAR-10 in its python pickle format in a local directory (nothing is downloaded)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["CIFAR10_CLASSES", "Cifar10Data"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Cifar10Data(DataSpecBase):
    """CIFAR-10 in its python pickle format in a local directory (nothing is downloaded)."""

    name: Literal["cifar10"]
    root: str = Field(min_length=1)
    """Directory with ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (or a ``cifar-10-batches-py`` in it)."""
    val_size: int = Field(5000, ge=1)
    """Images held out of the training batches for validation (stratified, seed 0)."""
    augment: bool = True
    """Random crop with 4-px padding (at 32 px, before resizing) and horizontal flip during training."""
    num_workers: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = "auto"
    """DataLoader worker processes; ``auto``: none, the 32-px uint8 images are in memory and a batch is one gather."""


DATASETS.add(
    DatasetKind.of(
        Cifar10Data,
        "archdsl.train.data.cifar10:cifar10_datamodule",
        "archdsl.train.data.cifar10:cifar10_preprocessing",
        lambda spec, n: list(CIFAR10_CLASSES),
        train_images=lambda spec: 50_000 - spec.val_size,
    ),
)
