"""archdsl: declarative YAML specs of vision backbones -> planned shapes -> plain ``torch.nn.Module``.

The API is loaded lazily: ``import archdsl`` and the spec/plan functions do not import torch; building,
training and loading models do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_API = {
    "archdsl.errors": ("ArchDSLError", "SearchError", "ShapeError", "SpecError", "UsageError"),
    "archdsl.spec.load": ("dump_spec", "load_spec", "spec_from_text"),
    "archdsl.planner": ("plan_model",),
    "archdsl.compiler.build": ("build_model",),
    "archdsl.export.artifact": ("load_model",),
    "archdsl.versions": ("__version__",),
}
__all__ = exported(_API)
__getattr__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:
    from archdsl.compiler.build import build_model
    from archdsl.errors import ArchDSLError, SearchError, ShapeError, SpecError, UsageError
    from archdsl.export.artifact import load_model
    from archdsl.planner import plan_model
    from archdsl.spec.load import dump_spec, load_spec, spec_from_text
    from archdsl.versions import __version__
