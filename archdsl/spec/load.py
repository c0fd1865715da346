"""Read a spec file into a :class:`ModelSpec`, and write one back canonically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from archdsl.errors import SpecError
from archdsl.spec.errors import problems_from_validation
from archdsl.spec.model import ModelSpec
from archdsl.spec.overrides import apply_overrides
from archdsl.spec.source import SourceDoc, read_yaml, read_yaml_text

__all__ = ["dump_spec", "is_search_doc", "load_spec", "parse_spec", "spec_from_text", "spec_to_data"]


def is_search_doc(doc: SourceDoc) -> bool:
    """A search definition (``base`` and ``params``), not a model spec."""
    return isinstance(doc.data, dict) and "base" in doc.data and "params" in doc.data


def parse_spec(doc: SourceDoc) -> ModelSpec:
    """Validate read YAML as a model spec; every problem is located in the file."""
    if not isinstance(doc.data, dict):
        raise SpecError.at("", f"a spec must be a mapping, got {type(doc.data).__name__}", doc.locate(()))
    if is_search_doc(doc):
        base = doc.data["base"]
        raise SpecError.at(
            "",
            f"this is a search definition (it has 'base' and 'params'), not a model spec; give its base spec "
            f"({base!r}) here, or run `archdsl validate {doc.file}` / `archdsl search {doc.file}`",
            doc.locate(()),
        )
    try:
        spec = ModelSpec.model_validate(doc.data)
    except ValidationError as err:
        raise SpecError(problems_from_validation(err, doc, ModelSpec)) from None
    return spec.with_source(doc)


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> ModelSpec:
    """Read and validate a spec file, with ``--set path=value`` overrides applied (shapes are checked by
    :func:`archdsl.plan_model`)."""
    return parse_spec(apply_overrides(read_yaml(path), overrides))


def spec_from_text(text: str, file: str = "<string>") -> ModelSpec:
    return parse_spec(read_yaml_text(text, file))


def spec_to_data(spec: ModelSpec) -> dict[str, Any]:
    """Plain JSON-compatible data with every default filled in (``type`` first in every mapping)."""
    return _type_first(spec.model_dump(mode="json"))


def _type_first(data: Any) -> Any:
    if isinstance(data, dict):
        ordered = {"type": data["type"]} if "type" in data else {}
        ordered.update((k, _type_first(v)) for k, v in data.items() if k != "type")
        return ordered
    if isinstance(data, list):
        return [_type_first(v) for v in data]
    return data


def dump_spec(spec: ModelSpec) -> str:
    """Canonical YAML: every default written out, keys in declaration order."""
    return yaml.safe_dump(spec_to_data(spec), sort_keys=False, default_flow_style=None, width=110)
