"""Pydantic validation errors -> located, readable problems with "did you mean" suggestions."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel, Discriminator, Tag, ValidationError

from archdsl.errors import Problem, brief
from archdsl.registry import suggest
from archdsl.spec.source import PathKey, SourceDoc, dotted

__all__ = ["fields_at", "problems_from_validation"]


def problems_from_validation(err: ValidationError, doc: SourceDoc, root: type[BaseModel]) -> list[Problem]:
    """One located :class:`Problem` per pydantic error, with paths in the user's terms."""
    problems = []
    for e in err.errors(include_url=False):
        path = _data_path(doc.data, e["loc"])
        if e["type"] == "union_tag_invalid":
            path = (*path, "type")
        message = _message(e, doc.data, path, root)
        where = doc.locate_key(path) if e["type"] == "extra_forbidden" else doc.locate(path)
        problems.append(Problem(dotted(path), message, where))
    return problems


def _follows(cur: Any, part: Any) -> bool:
    """Whether ``part`` is a list index or a key written in ``cur``."""
    return (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)) or (
        isinstance(cur, dict) and isinstance(part, str) and part in cur
    )


def _data_path(data: Any, loc: tuple[Any, ...]) -> PathKey:
    """Drop the union tags and validator names pydantic inserts into ``loc``."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if (
            _follows(cur, part)
            and following is not None
            and not isinstance(cur[part], dict)
            and not _follows(cur[part], following)
            and _follows(cur, following)
        ):
            continue  # a union tag that is also a key (a search parameter's ``float``): the error is beside it
        if _follows(cur, part):
            out.append(part)
            cur = cur[part]  # type: ignore[index]  # list index or dict key, checked above
        elif isinstance(cur, dict) and isinstance(part, str) and part not in cur and not _is_tag(cur, part):
            out.append(part)  # a missing or extra key
            cur = None
        # else: a union tag or a validator name: not part of the user's path
    return tuple(out)


def _is_tag(cur: dict[str, Any], part: str) -> bool:
    """Whether pydantic's ``part`` is the tag of the union member it chose (blocks are tagged by ``type``,
    datasets by ``name``) or a validator's name, neither of which is a key the user wrote."""
    return part in (cur.get("type"), cur.get("name")) or part.startswith(("function-", "tagged-union", "union["))


def _message(e: Any, data: Any, path: PathKey, root: type[BaseModel]) -> str:
    kind = e["type"]
    given = e.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        allowed = fields_at(root, data, path[:-1])
        hint = suggest(key, allowed) if allowed else ""
        known = f"; allowed keys: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key '{key}'{hint}{known}"
    if kind == "missing":
        return "is required but missing"
    if kind == "union_tag_invalid":
        ctx = e.get("ctx", {})
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        tag = str(ctx.get("tag", given))[:60]
        return f"unknown type '{tag}'{suggest(tag, tags)}; expected one of: {', '.join(tags)}"
    if kind == "literal_error":
        raw = str(e.get("ctx", {}).get("expected", "")).replace(" or ", ",").split(",")
        expected = [t.strip().strip("'") for t in raw if t.strip()]
        what = "type" if path and path[-1] == "type" else "value"
        hint = suggest(str(given)[:100], expected)
        return f"unknown {what} {brief(given)}{hint}; expected one of: {', '.join(expected)}"
    if kind == "union_tag_not_found":
        return "a 'type' key is required to say which kind this is"
    msg = str(e["msg"])
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.replace("input should", "must")
    if kind.startswith("value_error"):
        return msg.removeprefix("value error, ")
    return f"{msg}, got {brief(given)}" if not isinstance(given, dict | list) else msg


def _unwrap(tp: Any, data: Any) -> Any:
    """Follow Annotated/Optional/discriminated unions to the model or list type ``data`` is read as."""
    key = "type"
    tag: Any = data.get(key) if isinstance(data, dict) else None
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            for meta in getattr(tp, "__metadata__", ()):
                if isinstance(meta, Discriminator) and callable(meta.discriminator):
                    tag = meta.discriminator(data)  # a union told apart by a function (search parameters)
                elif isinstance(getattr(meta, "discriminator", None), str):  # tagged by another key: datasets' name
                    key = meta.discriminator
                    tag = data.get(key) if isinstance(data, dict) else None
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            chosen = next((m for m in members if tag is not None and _tag_of(m, key) == tag), None)
            if chosen is None and len(members) == 1:
                chosen = members[0]
            if chosen is None:
                return None
            tp = chosen
        else:
            return tp


def _tag_of(model: Any, key: str = "type") -> Any:
    if typing.get_origin(model) is typing.Annotated:  # Annotated[Model, Tag("name")]
        return next((m.tag for m in getattr(model, "__metadata__", ()) if isinstance(m, Tag)), None)
    field = getattr(model, "model_fields", {}).get(key)
    args = typing.get_args(field.annotation) if field is not None else ()
    return args[0] if args else None


def fields_at(root: type[BaseModel], data: Any, path: PathKey) -> list[str]:
    tp: Any = root
    cur = data
    for part in path:
        tp = _unwrap(tp, cur)
        if tp is None:
            return []
        if isinstance(part, int):
            args = typing.get_args(tp)
            if not args:
                return []
            tp = args[0]
        elif typing.get_origin(tp) is dict:  # a mapping of user-named entries (search parameters)
            tp = typing.get_args(tp)[1]
        else:
            fields = _keys(tp)
            if part not in fields:
                return []
            tp = fields[part].annotation
            if isinstance(fields[part].discriminator, str):  # pydantic keeps a field's own tag key (datasets: name)
                tp = typing.Annotated[tp, fields[part]]
        cur = _child(cur, part)
    tp = _unwrap(tp, cur)
    return list(_keys(tp))


def _child(cur: Any, part: str | int) -> Any:
    """``cur[part]`` where the data has it; None for a default not written (a nested section left out)."""
    if isinstance(cur, dict):
        return cur.get(part)
    if isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
        return cur[part]
    return None


def _keys(tp: Any) -> dict[str, Any]:
    """A model's fields by the key a user writes (its alias where it has one)."""
    fields = getattr(tp, "model_fields", None) or {}
    return {f.alias or name: f for name, f in fields.items()}
