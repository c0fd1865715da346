"""The spec language: YAML with locations, strict pydantic models, canonical dumps (no torch).

Its names are loaded lazily: kind modules import ``archdsl.spec.base``, and the spec models, which are
built from the registered kinds, must not be built while kinds are still registering.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ModelSpec", "StageSpec", "dump_spec", "load_spec", "parse_spec", "spec_from_text", "spec_to_data"]

_API = {
    "ModelSpec": "archdsl.spec.model",
    "StageSpec": "archdsl.spec.model",
    "dump_spec": "archdsl.spec.load",
    "load_spec": "archdsl.spec.load",
    "parse_spec": "archdsl.spec.load",
    "spec_from_text": "archdsl.spec.load",
    "spec_to_data": "archdsl.spec.load",
}

if TYPE_CHECKING:
    from archdsl.spec.load import dump_spec, load_spec, parse_spec, spec_from_text, spec_to_data
    from archdsl.spec.model import ModelSpec, StageSpec


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'archdsl.spec' has no attribute '{name}'")
