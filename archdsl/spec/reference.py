"""Markdown reference of the spec format, generated from the spec models into ``docs/reference/spec.md``.

``python -m archdsl.spec.reference --write [PATH]`` replaces the text between the page's markers (default
:data:`PAGE`); without ``--write`` it prints the reference."""

from __future__ import annotations

import json
import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from archdsl.kinds import ATTENTION, BLOCKS, DATASETS, HEADS, MIXERS, STEMS, TRANSITIONS
from archdsl.spec.augment import AugmentSpec, EmaSpec, MixSpec, RandAugmentSpec, RandomErasingSpec
from archdsl.spec.model import InputSpec, ModelSpec, StageSpec
from archdsl.spec.train import InitSpec, OptimSpec, ScheduleSpec, TrainSpec

__all__ = [
    "BEGIN",
    "END",
    "PAGE",
    "main",
    "model_table",
    "reference_start",
    "spec_reference",
    "write_into",
    "yaml_value",
]

BEGIN = "<!-- spec-reference:begin -->"
END = "<!-- spec-reference:end -->"
PAGE = "docs/reference/spec.md"
"""The documentation page that holds the generated reference, from the repository root."""


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        tags = [_tag(m) for m in args if m is not type(None)]
        if all(tags):
            text = "one of " + ", ".join(f"`{t}`" for t in tags)
        else:
            text = " \\| ".join(_type(m) for m in args if m is not type(None))
        return text + (" \\| null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _tag(model: Any) -> str | None:
    fields = getattr(model, "model_fields", {})
    for key in ("type", "name"):
        if key in fields and typing.get_origin(fields[key].annotation) is typing.Literal:
            return str(typing.get_args(fields[key].annotation)[0])
    return None


def yaml_value(value: Any) -> str:
    """A default as it is written in YAML: ``null``, ``false``, ``[0.9, 0.999]``, ``relu``."""
    if isinstance(value, str):
        return value if value and value.strip() == value and value[0] not in "[{&*!|>'\"%@`#" else json.dumps(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return json.dumps(value, separators=(", ", ": "))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, list):
            items = [v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
            return f"`{yaml_value(items)}`".replace("|", "\\|")
        return "(defaults)"
    return f"`{yaml_value(field.default)}`".replace("|", "\\|")


def model_table(title: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    """A markdown table of a model's keys: type, default (as YAML), meaning."""
    doc = (model.__doc__ or "").strip().splitlines()[0]
    lines = [f"#### {title}", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        key = field.alias or name
        lines.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {desc} |")
    return [*lines, ""]


def reference_start(begin: str, what: str, module: str, page: str) -> list[str]:
    """The opening lines of a generated reference: its marker and how to regenerate it into ``page``."""
    return [begin, "", f"_Generated from the {what} models by `python -m {module} --write {page}`._", ""]


def spec_reference() -> str:
    out = reference_start(BEGIN, "spec", "archdsl.spec.reference", PAGE)
    out += model_table("Model (top level)", ModelSpec)
    out += model_table("`input`", InputSpec)
    out += model_table("`stages[]`", StageSpec)
    for section, registry in (
        ("stem", STEMS),
        ("block", BLOCKS),
        ("mixer (of a bottleneck)", MIXERS),
        ("attention (of a block)", ATTENTION),
        ("transition", TRANSITIONS),
        ("head", HEADS),
    ):
        for name, kind in registry.items():
            out += model_table(f"{section} `type: {name}`", kind.spec, skip=("type",))
    out += model_table("`train`", TrainSpec)
    out += model_table("`train.optimizer`", OptimSpec)
    out += model_table("`train.schedule`", ScheduleSpec)
    out += model_table("`train.augment`", AugmentSpec)
    out += model_table("`train.augment.randaugment`", RandAugmentSpec)
    out += model_table("`train.augment.random_erasing`", RandomErasingSpec)
    out += model_table("`train.augment.mixup` / `train.augment.cutmix`", MixSpec)
    out += model_table("`train.ema`", EmaSpec)
    out += model_table("`train.init`", InitSpec)
    for name, dataset in DATASETS.items():
        out += model_table(f"`train.data` `name: {name}`", dataset.spec, skip=("name",))
    return "\n".join([*out, END])


def write_into(path: str, begin: str = BEGIN, end: str = END, text_of: Any = spec_reference) -> bool:
    """Replace the text between ``begin`` and ``end`` in ``path`` with ``text_of()``; True if it changed."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    start, stop = text.index(begin), text.index(end) + len(end)
    new = text[:start] + text_of() + text[stop:]
    if new != text:
        from archdsl.atomic import atomic_write_text

        atomic_write_text(path, new)
    return new != text


def main(argv: list[str], page: str, begin: str, end: str, text_of: Any) -> int:
    """``--write [PATH]``: regenerate the reference between the markers of PATH (default ``page``); no
    arguments: print it. Exit 2 with the usage on anything else."""
    if argv and argv[0] == "--write" and len(argv) <= 2:
        print("updated" if write_into(argv[1] if len(argv) == 2 else page, begin, end, text_of) else "up to date")
        return 0
    if argv:
        print(f"usage: --write [PATH] (default {page}), or no arguments to print the reference", file=sys.stderr)
        return 2
    print(text_of())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:], PAGE, BEGIN, END, spec_reference))
