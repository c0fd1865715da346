"""archdsl: declarative YAML specs of vision backbones -> planned shapes -> plain ``torch.nn.Module``.

The API is loaded lazily: ``import archdsl`` and the spec/plan functions do not import torch; building,
training and loading models do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "ArchDSLError": "archdsl.errors",
    "SearchError": "archdsl.errors",
    "ShapeError": "archdsl.errors",
    "SpecError": "archdsl.errors",
    "UsageError": "archdsl.errors",
    "dump_spec": "archdsl.spec.load",
    "load_spec": "archdsl.spec.load",
    "spec_from_text": "archdsl.spec.load",
    "plan_model": "archdsl.planner",
    "build_model": "archdsl.compiler.build",
    "load_model": "archdsl.export.artifact",
}

__all__ = [
    "ArchDSLError",
    "SearchError",
    "ShapeError",
    "SpecError",
    "UsageError",
    "__version__",
    "build_model",
    "dump_spec",
    "load_model",
    "load_spec",
    "plan_model",
    "spec_from_text",
]

if TYPE_CHECKING:
    from archdsl.compiler.build import build_model
    from archdsl.errors import ArchDSLError, SearchError, ShapeError, SpecError, UsageError
    from archdsl.export.artifact import load_model
    from archdsl.planner import plan_model
    from archdsl.spec.load import dump_spec, load_spec, spec_from_text


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archdsl' has no attribute '{name}'")
