"""Standalone, readable PyTorch source of a planned model: ``model.py`` imports only torch.

The files of ``archdsl.nn`` (and of plug-ins) whose classes the plan's recipes name are copied whole, with
the files they import, dependencies first: each keeps its docstring (the paper it implements) as a comment,
and loses only its imports (gathered at the top) and ``__all__``. ``build()`` prints the recipes the
compiler instantiates, as keyword constructor calls, one stage at a time, with a comment naming the spec
path and shapes of every block; consecutive blocks that differ in at most one plain argument are written as
a loop. Nothing is patched, recorded or built to write it, so it is the plan, printed.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import keyword
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archdsl.compiler.instantiate import resolve_target
from archdsl.plan.recipe import Recipe, target_allowed
from archdsl.plan.shapes import BACKBONE, STAGE, ModelPlan, Node

__all__ = ["class_name", "generate_source", "model_class_name", "nn_files"]

_WIDTH = 110
_TORCH_NN = "torch.nn."


def class_name(spec_name: str) -> str:
    """``digits_hybrid`` -> ``DigitsHybrid``."""
    return "".join(part[:1].upper() + part[1:] for part in spec_name.split("_") if part) or "Model"


@dataclass(frozen=True)
class _File:
    module: str
    path: Path
    docstring: str
    imports: list[str]
    """Import statements of other packages, as written."""
    deps: list[str]
    """Modules of archdsl.nn (or of the plug-in) it imports."""
    body: str
    names: list[str]
    """Top-level names it defines."""


def _copied(module: str) -> bool:
    """Modules whose files are copied into ``model.py`` (``archdsl.nn`` and plug-ins' packages, not torch)."""
    return target_allowed(module + ".") and not module.startswith("torch")


def _read(module: str) -> _File:
    path = Path(inspect.getfile(importlib.import_module(module)))
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    drop: set[int] = set()
    imports: list[str] = []
    deps: list[str] = []
    names: list[str] = []
    for i, node in enumerate(tree.body):
        span = range(node.lineno - 1, (node.end_lineno or node.lineno))
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            drop.update(span)  # the docstring, kept as a comment
        elif isinstance(node, ast.ImportFrom) and node.module == "__future__":
            drop.update(span)
        elif isinstance(node, ast.ImportFrom) and node.module and _copied(node.module):
            deps.append(node.module)
            drop.update(span)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports.append("\n".join(lines[j] for j in span))
            drop.update(span)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            drop.update(span)
        else:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                names.append(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names += [t.id for t in targets if isinstance(t, ast.Name)]
    body = "\n".join(line for j, line in enumerate(lines) if j not in drop).strip("\n")
    return _File(module, path, ast.get_docstring(tree) or "", imports, deps, body, names)


def nn_files(recipe: Recipe) -> list[_File]:
    """The module files the recipe's targets need, dependencies first."""
    wanted = sorted({r.target.rsplit(".", 1)[0] for r in recipe.walk() if not r.target.startswith(_TORCH_NN)})
    ordered: list[_File] = []
    seen: set[str] = set()

    def visit(module: str) -> None:
        if module in seen:
            return
        seen.add(module)
        f = _read(module)
        for dep in sorted(f.deps):
            visit(dep)
        ordered.append(f)

    for module in wanted:
        visit(module)
    return ordered


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _name(target: str) -> str:
    cls = target.rsplit(".", 1)[1]
    return f"nn.{cls}" if target.startswith(_TORCH_NN) else cls


def _value(value: Any, level: int) -> str:
    if isinstance(value, Recipe):
        return _call(value, level)
    if isinstance(value, list):
        items = [_value(v, level + 1) for v in value]
        one = "[" + ", ".join(items) + "]"
        if len(one) + 4 * level <= _WIDTH and "\n" not in one:
            return one
        pad = "    " * (level + 1)
        return "[\n" + "".join(f"{pad}{item},\n" for item in items) + "    " * level + "]"
    return repr(value)


def _shown(recipe: Recipe) -> list[tuple[str, Any]]:
    """Arguments that differ from the constructor's defaults."""
    signature = inspect.signature(resolve_target(recipe.target))
    out = []
    for key, value in recipe.kwargs.items():
        param = signature.parameters.get(key)
        if param is not None and param.default is not inspect.Parameter.empty and _same(param.default, value):
            continue
        out.append((key, value))
    return out


def _call(recipe: Recipe, level: int, override: dict[str, str] | None = None) -> str:
    args = [(k, override[k] if override and k in override else _value(v, level + 1)) for k, v in _shown(recipe)]
    if override:
        args += [(k, v) for k, v in override.items() if k not in dict(args)]
    one = f"{_name(recipe.target)}(" + ", ".join(f"{k}={v}" for k, v in args) + ")"
    if len(one) + 4 * level <= _WIDTH and "\n" not in one:
        return one
    pad = "    " * (level + 1)
    body = "".join(f"{pad}{k}={v},\n" for k, v in args)
    return f"{_name(recipe.target)}(\n{body}{'    ' * level})"


def _varying(recipes: Sequence[Recipe]) -> set[str] | None:
    """Arguments that differ between recipes of one class, or None when they are not one class."""
    first = recipes[0]
    if any(r.target != first.target or set(r.kwargs) != set(first.kwargs) for r in recipes):
        return None
    return {k for k in first.kwargs if any(not _same(r.kwargs[k], first.kwargs[k]) for r in recipes)}


def _groups(parts: Sequence[Node]) -> list[list[Node]]:
    """Runs of consecutive parts that can be one loop: same shapes, same class, at most one differing plain
    argument (the stochastic-depth rate of deeper blocks, typically)."""
    groups: list[list[Node]] = []
    for part in parts:
        head = groups[-1][0] if groups else None
        if head is not None and (head.in_shape, head.out_shape) == (part.in_shape, part.out_shape):
            candidate = [*groups[-1], part]
            varying = _varying([p.recipe for p in candidate])
            plain = varying is not None and all(not isinstance(part.recipe.kwargs[k], Recipe | list) for k in varying)
            if varying is not None and len(varying) <= 1 and plain:
                groups[-1] = candidate
                continue
        groups.append([part])
    return groups


def _shapes(a: Sequence[int], b: Sequence[int]) -> str:
    return f"{'x'.join(map(str, a))} -> {'x'.join(map(str, b))}"


def _kind(node: Node) -> str:
    inner = "+".join(c.type for c in node.children)
    return f"{node.type}({inner})" if inner else node.type


def _stage_lines(parts: Sequence[Node], level: int) -> list[str]:
    pad = "    " * level
    lines = []
    for group in _groups(parts):
        first, last = group[0], group[-1]
        where = first.label if len(group) == 1 else f"{first.label} .. #{last.repeat}"
        lines.append(f"{pad}# {where} ({_kind(first)}, {_shapes(first.in_shape, last.out_shape)})")
        if len(group) == 1:
            lines.append(f"{pad}{_call(first.recipe, level)},")
            continue
        varying = _varying([p.recipe for p in group]) or set()
        if not varying:
            lines.append(f"{pad}*[{_call(first.recipe, level)} for _ in range({len(group)})],")
        else:
            (key,) = varying
            values = ", ".join(repr(p.recipe.kwargs[key]) for p in group)
            call = _call(first.recipe, level, override={key: key})
            lines.append(f"{pad}*[{call} for {key} in ({values})],")
    return lines


_TAKEN = {*dir(builtins), "build", "Model", "INPUT_SHAPE", "NUM_CLASSES", "annotations"}
"""Names the generated file's class must not take: Python's built-ins (a class named ``ValueError`` would be
raised by the copied code's checks) and the module-level names of ``model.py`` itself."""


def _imports(files: list[_File]) -> list[str]:
    """The import statements of ``model.py``: ``from torch import nn`` and those of the copied files, once each;
    one-line ``from M import ...`` statements of one module merged into one, names in isort's order."""
    statements = list(dict.fromkeys(["from torch import nn", *(i for f in files for i in f.imports)]))
    merged: dict[str, list[str]] = {}  # module -> the names its one-line from-imports bring, in order
    order: list[tuple[str, bool]] = []  # (a statement kept as it is, False) or (a merged module, True)
    for statement in statements:
        module, _, names = statement.removeprefix("from ").partition(" import ")
        if (
            not statement.startswith("from ")
            or not names
            or " import " in names
            or "\n" in statement
            or "(" in statement
        ):
            order.append((statement, False))
            continue
        if module not in merged:
            merged[module] = []
            order.append((module, True))
        merged[module] += [n.strip() for n in names.split(",") if n.strip() not in merged[module]]
    return [_from_import(text, merged[text]) if is_module else text for text, is_module in order]


def _from_import(module: str, names: list[str]) -> str:
    def key(name: str) -> tuple[int, str]:
        bare = name.split(" as ")[0]
        return (0 if bare.isupper() else 1 if bare[:1].isupper() else 2, bare)

    ordered = sorted(dict.fromkeys(names), key=key)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= 120:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in ordered) + ")"


def _class_for(spec_name: str, files: list[_File]) -> str:
    """``class_name`` of the spec, + ``Model`` until it is neither a keyword (``none`` gives ``None``), a
    built-in, a name of ``model.py`` itself, nor a name the copied files define or import."""
    taken = _TAKEN | {n for f in files for n in f.names} | {i.split(" as ")[-1].split()[-1] for i in _imports(files)}
    name = class_name(spec_name)
    while keyword.iskeyword(name) or name in taken:
        name += "Model"
    return name


def model_class_name(plan: ModelPlan) -> str:
    """The class name ``model.py`` gives the model."""
    return _class_for(plan.name, nn_files(plan.recipe))


def generate_source(plan: ModelPlan, header: str = "") -> str:
    """The text of ``model.py``: the module classes, ``INPUT_SHAPE``, ``NUM_CLASSES`` and ``build()``."""
    recipe = plan.recipe
    files = nn_files(recipe)
    imports = _imports(files)
    name = _class_for(plan.name, files)
    stages = []
    for stage in plan.stages:
        stages += [
            f"    stage{stage.index} = {_name(STAGE)}(",
            "        blocks=[",
            *_stage_lines(stage.parts, 3),
            "        ]",
            "    )",
        ]
    info = recipe.kwargs
    build = [
        "def build() -> nn.Module:",
        f'    """A freshly initialised {name}; load the weights with ``load_state_dict``."""',
        f"    # stem ({_kind(plan.stem)}, {_shapes(plan.stem.in_shape, plan.stem.out_shape)})",
        f"    stem = {_call(plan.stem.recipe, 1)}",
        *stages,
        f"    # head ({_kind(plan.head)}, {_shapes(plan.head.in_shape, plan.head.out_shape)})",
        f"    head = {_call(plan.head.recipe, 1)}",
        f"    return {name}(",
        "        stem=stem,",
        f"        stages=[{', '.join(f'stage{s.index}' for s in plan.stages)}],",
        "        head=head,",
        f"        feature_channels={info['feature_channels']!r},",
        f"        feature_reductions={info['feature_reductions']!r},",
        "    )",
    ]

    def order(i: str) -> tuple[bool, str]:
        return i.startswith("from"), i

    stdlib = sorted((i for i in imports if not i.split()[1].startswith("torch")), key=order)
    third = sorted((i for i in imports if i.split()[1].startswith("torch")), key=order)
    sections = []
    for f in files:
        doc = "\n".join(f"# {line}".rstrip() for line in f.docstring.splitlines())
        short = f.module.rsplit(".", 1)[1]
        sections.append(f"# ---- {short} " + "-" * max(0, 96 - len(short)) + f"\n{doc}\n\n\n{f.body}\n")
    model_class = (
        f"class {name}({_name(BACKBONE)}):\n"
        f'    """{plan.name}: {plan.params:,} parameters, input {tuple(plan.input)}, {plan.output[0]} classes."""\n'
    )
    text = [
        f'"""{header or name}\n\nGenerated by archdsl from the plan of spec \'{plan.name}\'; needs only PyTorch. '
        '``build()`` returns the model."""',
        "",
        "from __future__ import annotations",
        "",
        *stdlib,
        *([""] if stdlib else []),
        *third,
        "",
        f"INPUT_SHAPE = {tuple(plan.input)!r}",
        '"""(C, H, W) of one input image."""',
        f"NUM_CLASSES = {plan.output[0]}",
        "",
        "",
        "\n\n".join(sections),
        "",
        model_class,
        "",
        "\n".join(build),
        "",
    ]
    return "\n".join(text)
