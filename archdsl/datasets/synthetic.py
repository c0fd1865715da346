"""Seeded random tensors of the spec's input shape, for smoke tests and benchmarks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import SpecModel

__all__ = ["SyntheticData"]


class SyntheticData(SpecModel):
    """Seeded random tensors of the spec's input shape, for smoke tests and benchmarks."""

    name: Literal["synthetic"]
    num_samples: int = Field(256, ge=8)
    """Training samples (validation and test get a quarter each)."""
    num_classes: int | None = Field(None, ge=2)
    """Classes; default: the head's."""


def preprocessing(spec: SyntheticData, channels: int, size: int) -> dict[str, Any]:
    return {"scale": "pixel / 255", "mean": [0.0] * channels, "std": [1.0] * channels, "invert": False}


DATASETS.register(
    "synthetic",
    DatasetKind("synthetic", SyntheticData, "archdsl.train.data.synthetic:synthetic_datamodule",
                "archdsl.datasets.synthetic:preprocessing",
                lambda spec, n: [str(i) for i in range(n)]),
)  # fmt: skip
