"""The search file: its models (:mod:`.definition`), loading and checks against the base spec
(:mod:`.load`), parameter paths (:mod:`.paths`), a trial's spec (:mod:`.resolution`, the only place that samples),
HaloNet's ``conv_stages`` (:mod:`.conv_stages`) and ``components`` (:mod:`.components`), its JSON schema and
the reference in docs/reference/search.md. No torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_EXPORTS = {
    "archdsl.search.space.components": ("COMPONENT_ROWS", "apply_components"),
    "archdsl.search.space.conv_stages": ("apply_conv_stages",),
    "archdsl.search.space.definition": (
        "COMPONENTS",
        "CONV_STAGES",
        "BlockChoiceParam",
        "ChoiceParam",
        "FloatParam",
        "IntParam",
        "SearchDefinition",
        "WorkersSpec",
    ),
    "archdsl.search.space.load": ("SearchSpace", "load_search", "search_from_text"),
    "archdsl.search.space.paths": ("assign", "expand", "is_valid_path", "parse_pattern"),
    "archdsl.search.space.reference": ("search_reference",),
    "archdsl.search.space.resolution": ("resolve",),
    "archdsl.search.space.schema": ("search_schema",),
}
__all__ = exported(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from archdsl.search.space.components import COMPONENT_ROWS, apply_components
    from archdsl.search.space.conv_stages import apply_conv_stages
    from archdsl.search.space.definition import (
        COMPONENTS,
        CONV_STAGES,
        BlockChoiceParam,
        ChoiceParam,
        FloatParam,
        IntParam,
        SearchDefinition,
        WorkersSpec,
    )
    from archdsl.search.space.load import SearchSpace, load_search, search_from_text
    from archdsl.search.space.paths import assign, expand, is_valid_path, parse_pattern
    from archdsl.search.space.reference import search_reference
    from archdsl.search.space.resolution import resolve
    from archdsl.search.space.schema import search_schema
