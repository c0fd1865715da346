"""Build an ``nn.Module`` from a spec, and count it on the meta device."""

from archdsl.compiler.backbone import Backbone
from archdsl.compiler.build import build_model
from archdsl.compiler.count import measure

__all__ = ["Backbone", "build_model", "measure"]
