"""A user's own LightningDataModule, ``module:Class``: imports user code, so only with ``--allow-import``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archdsl.datasets.defaults import PIXELS, numbered_classes
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


DATASETS.add(
    DatasetKind.of(CustomData, "archdsl.train.data.custom:custom_datamodule", PIXELS, numbered_classes),
)
