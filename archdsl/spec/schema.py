"""JSON Schema of the spec format (point an editor's YAML language server at it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from archdsl.spec.model import ModelSpec

__all__ = ["model_schema", "spec_schema"]


def model_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """A model's validation schema as a draft 2020-12 JSON Schema document."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


def spec_schema() -> dict[str, Any]:
    return model_schema(ModelSpec, "archdsl model spec")
