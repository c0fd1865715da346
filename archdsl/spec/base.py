"""The base of every spec model: strict, frozen, no unknown keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["ActName", "BlockSpecBase", "DataSpecBase", "OddKernel", "SpecModel"]

ActName = Literal["relu", "silu", "gelu", "hardswish"]
"""Activation functions by name (``archdsl.nn.act``)."""


def _odd(k: int) -> int:
    if k % 2 != 1:
        raise ValueError(f"kernel_size must be odd so that the map keeps its shape, got {k}")
    return k


OddKernel = Annotated[int, Field(ge=1, le=11), AfterValidator(_odd)]
"""A convolution kernel side: odd, 1 to 11 ('same' padding k // 2 keeps the map size)."""


class SpecModel(BaseModel):
    """Strict frozen pydantic model; every field is typed and documented."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
        allow_inf_nan=False,  # no field means anything with .inf or .nan: refuse them when the file is read
    )


class BlockSpecBase(SpecModel):
    """Fields every block entry has."""

    repeat: int = Field(1, ge=1, le=64)
    """How many times the block is stacked; only the first repeat applies the stage's stride."""


class DataSpecBase(SpecModel):
    """Fields every ``train.data`` entry has (a dataset's spec narrows ``name`` to its own tag)."""

    name: str
    """The dataset."""
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Train on this fraction of the training split: a subset stratified by class and fixed by ``train.seed``
    (validation and test stay whole); a fidelity to search or prune over (``pruner.fidelity: data``)."""
