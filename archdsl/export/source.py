"""Generate standalone, readable PyTorch source of a built model: importing only torch.

The classes the model uses are copied (with the helpers and constants they reference, dependencies
first) from archdsl's own modules; ``build()`` re-creates the module tree from the constructor arguments
recorded at build time (:mod:`archdsl.export.record`), one statement per stage, so the state-dict keys
are the same and weights load directly.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
import types
from typing import Any

from torch import nn

from archdsl.export.record import INIT_ATTR
from archdsl.plan.shapes import ModelPlan

__all__ = ["class_name", "generate_source"]

_MODULE_IMPORTS = {
    "torch": "import torch",
    "torch.nn": "from torch import nn",
    "torch.nn.functional": "import torch.nn.functional as F",
    "math": "import math",
}
_WIDTH = 100


def class_name(spec_name: str) -> str:
    """``digits_hybrid`` -> ``DigitsHybrid``."""
    return "".join(part[:1].upper() + part[1:] for part in spec_name.split("_") if part) or "Model"


class _Collector:
    """Source of archdsl classes/functions/constants, dependencies first, plus the imports they need."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[object, str]] = {}
        self.imports: set[str] = set()
        self._visiting: set[str] = set()

    def add(self, obj: Any, rename: str | None = None) -> None:
        name = rename or obj.__name__
        if name in self.items or name in self._visiting:
            return
        self._visiting.add(name)
        module = sys.modules[obj.__module__]
        source = textwrap.dedent(inspect.getsource(obj))
        self._dependencies(source, module)
        if rename:
            source = source.replace(f"class {obj.__name__}(", f"class {rename}(", 1)
        self.items[name] = (obj, source)

    def _constant(self, name: str, module: types.ModuleType) -> None:
        if name in self.items or name in self._visiting:
            return
        module_source = inspect.getsource(module)
        for node in ast.parse(module_source).body:
            targets = (
                [t.id for t in node.targets if isinstance(t, ast.Name)]
                if isinstance(node, ast.Assign)
                else [node.target.id]
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                else []
            )
            if name in targets:
                source = ast.get_source_segment(module_source, node) or ""
                self._visiting.add(name)
                self._dependencies(source, module)
                self.items[name] = (None, source + "\n")
                return
        raise ValueError(f"cannot find the definition of {name} in {module.__name__}")

    def _dependencies(self, source: str, module: types.ModuleType) -> None:
        names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        for name in sorted(names):
            if name in vars(builtins) and name not in vars(module):
                continue
            value = vars(module).get(name)
            if value is None:
                continue
            if isinstance(value, types.ModuleType):
                self.imports.add(_MODULE_IMPORTS.get(value.__name__, f"import {value.__name__}"))
            elif getattr(value, "__module__", "").startswith("archdsl") and (
                inspect.isclass(value) or inspect.isfunction(value)
            ):
                self.add(value)
            elif (
                getattr(value, "__module__", None) in ("typing", "collections.abc", "typing_extensions")
                or inspect.isclass(value)
                or inspect.isfunction(value)
            ):
                self.imports.add(f"from {value.__module__} import {name}")
            else:  # a module-level constant of an archdsl module
                self._constant(name, module)


def _call(cls: type, arguments: dict[str, Any], level: int) -> str:
    signature = inspect.signature(cls)
    shown = []
    for key, value in arguments.items():
        param = signature.parameters.get(key)
        if param is not None and param.default is not inspect.Parameter.empty and _same(param.default, value):
            continue
        shown.append((key, value))
    name = f"nn.{cls.__name__}" if cls.__module__.startswith("torch.") else cls.__name__
    one = f"{name}(" + ", ".join(f"{k}={_expr(v, level + 1)}" for k, v in shown) + ")"
    if len(one) + 4 * level <= _WIDTH and "\n" not in one:
        return one
    pad = "    " * (level + 1)
    body = "".join(f"{pad}{k}={_expr(v, level + 1)},\n" for k, v in shown)
    return f"{name}(\n{body}{'    ' * level})"


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _expr(value: Any, level: int) -> str:
    if isinstance(value, nn.Module):
        recorded = value.__dict__.get(INIT_ATTR)
        if recorded is not None:
            return _call(recorded[0], recorded[1], level)
        if type(value) is nn.Sequential:
            pad = "    " * (level + 1)
            items = "".join(f"{pad}{_expr(m, level + 1)},\n" for m in value)
            return f"nn.Sequential(\n{items}{'    ' * level})"
        raise ValueError(f"cannot write {type(value).__name__} as source: its constructor was not recorded")
    if isinstance(value, list | tuple):
        inner = ", ".join(_expr(v, level) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, bool | int | float | str) or value is None:
        return repr(value)
    raise ValueError(f"cannot write a {type(value).__name__} constructor argument as source")


def generate_source(model: nn.Module, plan: ModelPlan, header: str = "") -> str:
    """The text of ``model.py``: classes, ``INPUT_SHAPE`` and ``build()``."""
    name = class_name(plan.name)
    collector = _Collector()
    for module in model.modules():
        cls = type(module)
        if cls is type(model):
            continue
        if cls.__module__.startswith("archdsl"):
            collector.add(cls)
    collector.add(type(model), rename=name)
    collector.imports.add("from torch import nn")
    stages = []
    for stage_plan, stage in zip(plan.stages, model.stages, strict=True):  # type: ignore[attr-defined, arg-type]
        lines = [f"    stage{stage_plan.index} = nn.Sequential("]
        for part, module in zip(stage_plan.parts, stage, strict=True):
            shapes = f"{'x'.join(map(str, part.in_shape))} -> {'x'.join(map(str, part.out_shape))}"
            shapes = f"{'x'.join(map(str, part.in_shape))} -> {'x'.join(map(str, part.out_shape))}"
            what = f"{part.path} ({part.type}, {shapes})"
            lines.append(f"        # {what}")
            lines.append(f"        {_expr(module, 2)},")
        lines.append("    )")
        stages.append("\n".join(lines))
    stage_names = ", ".join(f"stage{s.index}" for s in plan.stages)
    build = [
        "def build() -> nn.Module:",
        f'    """A freshly initialised {name}; load the weights with ``load_state_dict``."""',
        f"    stem = {_expr(model.stem, 1)}",  # type: ignore[attr-defined]
        *stages,
        f"    head = {_expr(model.head, 1)}",  # type: ignore[attr-defined]
        f"    return {name}(stem, [{stage_names}], head)",
    ]

    def top(line: str) -> str:
        return line.split()[1].split(".")[0]

    stdlib = sorted((i for i in collector.imports if top(i) != "torch"), key=lambda i: (i.startswith("from"), i))
    third = sorted((i for i in collector.imports if top(i) == "torch"), key=lambda i: (i.startswith("from"), i))
    imports = [*stdlib, *([""] if stdlib else []), *third]
    blocks = [src.rstrip() + "\n" for _, (_, src) in collector.items.items()]
    text = [
        f'"""{header or name}\n\nGenerated by archdsl; needs only PyTorch. ``build()`` returns the model."""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "",
        f"INPUT_SHAPE = {tuple(plan.input)!r}",
        '"""(C, H, W) of one input image."""',
        f"NUM_CLASSES = {plan.output[0]}",
        "",
        "",
        "\n\n".join(blocks),
        "",
        "\n".join(build),
        "",
    ]
    return "\n".join(text)
