"""``--set dotted.path=value`` overrides, validated and located like the file itself."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from archdsl.errors import Location, SpecError
from archdsl.spec.source import PathKey, SourceDoc, parse_dotted, read_yaml_text

__all__ = ["apply_overrides"]


def apply_overrides(doc: SourceDoc, assignments: Sequence[str]) -> SourceDoc:
    """A copy of ``doc`` with each ``path=value`` applied; the value is read as (flow) YAML."""
    if not assignments:
        return doc
    data = copy.deepcopy(doc.data)
    overrides = dict(doc.overrides)
    for text in assignments:
        where = Location(f"--set {text}", 1, 1)
        path_text, sep, value_text = text.partition("=")
        if not sep or not path_text.strip():
            raise SpecError.at("", "must be of the form dotted.path=value", where)
        path = parse_dotted(path_text.strip())
        value_loc = Location(where.file, 1, len(path_text) + 2)
        try:
            value = read_yaml_text(f"v: {value_text}" if value_text.strip() else "v: null", where.file).data["v"]
        except SpecError as err:
            raise SpecError.at(path_text, f"value is not valid YAML: {err.problems[0].message}", value_loc) from None
        _assign(data, path, value, path_text, where)
        overrides[path] = value_loc
    return replace(doc, data=data, overrides=overrides)


def _assign(data: Any, path: PathKey, value: Any, text: str, where: Location) -> None:
    cur = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(cur, list):
            if not isinstance(part, int) or not 0 <= part < len(cur):
                raise SpecError.at(
                    text, f"{'.'.join(map(str, path[:i]))} has {len(cur)} items, got index {part}", where
                )
            cur = cur[part]
        elif isinstance(cur, dict):
            key = str(part)
            if key not in cur or cur[key] is None:
                cur[key] = [] if isinstance(nxt, int) else {}
            cur = cur[key]
        else:
            raise SpecError.at(text, f"{'.'.join(map(str, path[: i + 1]))} is a value, not a mapping or list", where)
    last = path[-1]
    if isinstance(cur, list):
        if not isinstance(last, int) or not 0 <= last < len(cur):
            raise SpecError.at(text, f"the list has {len(cur)} items, got index {last}", where)
        cur[last] = value
    elif isinstance(cur, dict):
        cur[str(last)] = value
    else:
        raise SpecError.at(text, "the parent is a value, not a mapping or list", where)
