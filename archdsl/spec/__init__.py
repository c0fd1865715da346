"""The spec language: YAML with locations, strict pydantic models, canonical dumps."""

from archdsl.spec.load import dump_spec, load_spec, parse_spec, spec_from_text, spec_to_data
from archdsl.spec.model import ModelSpec, StageSpec

__all__ = ["ModelSpec", "StageSpec", "dump_spec", "load_spec", "parse_spec", "spec_from_text", "spec_to_data"]
