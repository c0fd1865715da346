"""JSON Schema of the search-file format (``archdsl schema --search``)."""

from __future__ import annotations

from typing import Any

from archdsl.search.space.definition import SearchDefinition
from archdsl.spec.schema import model_schema

__all__ = ["search_schema"]


def search_schema() -> dict[str, Any]:
    return model_schema(SearchDefinition, "archdsl search file")
