"""A user's own LightningDataModule, ``module:Class``: imports user code, so only with ``--allow-import``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from archdsl.datasets.defaults import PIXELS, numbered_classes
from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["CustomData"]


class CustomData(DataSpecBase):
    """A user LightningDataModule ``module:Class``; refused unless the command line says ``--allow-import``."""

    name: Literal["custom"]
    target: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``package.module:ClassName``."""
    kwargs: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Keyword arguments passed to the class (plain values only)."""

    @field_validator("fraction")
    @classmethod
    def _whole_training_split(cls, fraction: float) -> float:
        if fraction != 1.0:
            raise ValueError(
                "a custom LightningDataModule picks its own training samples, so archdsl cannot take a stratified "
                f"subset of them; fraction needs a dataset archdsl reads (digits, mnist5k, synthetic, cifar10, "
                f"image_folder), got {fraction}"
            )
        return fraction


DATASETS.add(
    DatasetKind.of(CustomData, "archdsl.train.data.custom:custom_datamodule", PIXELS, numbered_classes),
)
