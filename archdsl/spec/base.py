"""The base of every spec model: strict, frozen, no unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BlockSpecBase", "SpecModel"]


class SpecModel(BaseModel):
    """Strict frozen pydantic model; every field is typed and documented."""

    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=True
    )


class BlockSpecBase(SpecModel):
    """Fields every block entry has."""

    repeat: int = Field(1, ge=1, le=64)
    """How many times the block is stacked; only the first repeat applies the stage's stride."""
