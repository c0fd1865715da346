"""JSON Schema of the search-file format (``archdsl schema --search``)."""

from __future__ import annotations

from typing import Any

from archdsl.search.definition import SearchDefinition

__all__ = ["search_schema"]


def search_schema() -> dict[str, Any]:
    schema = SearchDefinition.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archdsl search file"
    return schema
