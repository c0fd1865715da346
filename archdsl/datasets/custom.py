"""A user's own LightningDataModule, ``module:Class``: imports user code, so only with ``--allow-import``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import SpecModel

__all__ = ["CustomData"]


class CustomData(SpecModel):
    """A user LightningDataModule ``module:Class``; refused unless the command line says ``--allow-import``."""

    name: Literal["custom"]
    target: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``package.module:ClassName``."""
    kwargs: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Keyword arguments passed to the class (plain values only)."""


def preprocessing(spec: CustomData, channels: int, size: int) -> dict[str, Any]:
    return {"scale": "pixel / 255", "mean": [0.0] * channels, "std": [1.0] * channels, "invert": False}


DATASETS.register(
    "custom",
    DatasetKind("custom", CustomData, "archdsl.train.data.custom:custom_datamodule",
                "archdsl.datasets.custom:preprocessing",
                lambda spec, n: [str(i) for i in range(n)]),
)  # fmt: skip
