"""archdsl: declarative YAML specs of vision backbones -> planned shapes -> plain ``torch.nn.Module``."""

from typing import Any

from archdsl.compiler.build import build_model
from archdsl.errors import ArchDSLError, SearchError, ShapeError, SpecError
from archdsl.plan.planner import plan_model
from archdsl.spec.load import dump_spec, load_spec, spec_from_text

__version__ = "0.1.0"

__all__ = [
    "ArchDSLError",
    "SearchError",
    "ShapeError",
    "SpecError",
    "__version__",
    "build_model",
    "dump_spec",
    "load_model",
    "load_spec",
    "plan_model",
    "spec_from_text",
]


def load_model(directory: str) -> Any:
    """The model of an artifact written by ``archdsl export`` (a plain ``nn.Module``, eval mode)."""
    from archdsl.export.artifact import load_model as _load

    return _load(directory)
