"""JSON Schema of the spec format (point an editor's YAML language server at it)."""

from __future__ import annotations

from typing import Any

from archdsl.spec.model import ModelSpec

__all__ = ["spec_schema"]


def spec_schema() -> dict[str, Any]:
    schema = ModelSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archdsl model spec"
    return schema
