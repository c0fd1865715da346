"""Seeded random tensors of the spec's input shape, for smoke tests and benchmarks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.datasets.defaults import PIXELS, numbered_classes
from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["SyntheticData"]


class SyntheticData(DataSpecBase):
    """Seeded random tensors of the spec's input shape, for smoke tests and benchmarks."""

    name: Literal["synthetic"]
    num_samples: int = Field(256, ge=8, le=10_000_000)
    """Training samples (validation and test get a quarter each)."""
    num_classes: int | None = Field(None, ge=2)
    """Classes; default: the head's."""


DATASETS.add(
    DatasetKind.of(
        SyntheticData,
        "archdsl.train.data.synthetic:synthetic_datamodule",
        PIXELS,
        numbered_classes,
        train_images=lambda spec: spec.num_samples,
    ),
)
