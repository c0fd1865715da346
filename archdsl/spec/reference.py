"""Markdown reference of the spec format, generated from the spec models (README's "Spec reference")."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from archdsl.kinds import ATTENTION, BLOCKS, DATASETS, HEADS, MIXERS, STEMS, TRANSITIONS
from archdsl.spec.model import InputSpec, ModelSpec, StageSpec
from archdsl.spec.train import OptimSpec, ScheduleSpec, TrainSpec

__all__ = ["BEGIN", "END", "spec_reference"]

BEGIN = "<!-- spec-reference:begin -->"
END = "<!-- spec-reference:end -->"


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


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    if field.default_factory is not None:
        return "(defaults)"
    return f"`{field.default!r}`".replace("|", "\\|")


def _table(title: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    doc = (model.__doc__ or "").strip().splitlines()[0]
    lines = [f"#### {title}", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {desc} |")
    return [*lines, ""]


def spec_reference() -> str:
    out = [
        BEGIN,
        "",
        "_Generated from the spec models by `python -m archdsl.spec.reference --write README.md`._",
        "",
    ]
    out += _table("Model (top level)", ModelSpec)
    out += _table("`input`", InputSpec)
    out += _table("`stages[]`", StageSpec)
    for section, registry in (
        ("stem", STEMS),
        ("block", BLOCKS),
        ("mixer (of a bottleneck)", MIXERS),
        ("attention (of a block)", ATTENTION),
        ("transition", TRANSITIONS),
        ("head", HEADS),
    ):
        for name, kind in registry.items():
            out += _table(f"{section} `type: {name}`", kind.spec, skip=("type",))
    out += _table("`train`", TrainSpec)
    out += _table("`train.optimizer`", OptimSpec)
    out += _table("`train.schedule`", ScheduleSpec)
    for name, dataset in DATASETS.items():
        out += _table(f"`train.data` `name: {name}`", dataset.spec, skip=("name",))
    return "\n".join([*out, END])


def write_into(path: str) -> bool:
    """Replace the text between :data:`BEGIN` and :data:`END` in ``path``; True if it changed."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + spec_reference() + text[end:]
    if new != text:
        Path(path).write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        print("updated" if write_into(sys.argv[2]) else "up to date")
    else:
        print(spec_reference())
