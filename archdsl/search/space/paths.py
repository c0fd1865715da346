"""Spec paths with wildcards over plain spec data: expand, check against the spec models, assign."""

from __future__ import annotations

from typing import Any

from archdsl.registry import suggest
from archdsl.spec.errors import fields_at
from archdsl.spec.model import ModelSpec
from archdsl.spec.source import PathKey, parse_dotted

__all__ = ["assign", "expand", "is_valid_path", "parse_pattern", "suggest_path"]

WILDCARD = "*"


def parse_pattern(text: str) -> PathKey:
    """``"stages.*.blocks.0.mixer"`` -> ``("stages", "*", "blocks", 0, "mixer")``."""
    return parse_dotted(text)


def expand(data: Any, pattern: PathKey) -> list[PathKey]:
    """Every concrete path matching ``pattern``; wildcards match list indices and mapping keys that exist,
    and the last key may be a field not written in the data (its default is then replaced)."""
    out: list[PathKey] = []

    def walk(cur: Any, i: int, prefix: PathKey) -> None:
        if i == len(pattern):
            out.append(prefix)
            return
        part = pattern[i]
        last = i == len(pattern) - 1
        if part == WILDCARD:
            keys = range(len(cur)) if isinstance(cur, list) else list(cur) if isinstance(cur, dict) else []
            for k in keys:
                walk(cur[k], i + 1, (*prefix, k))
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            walk(cur[part], i + 1, (*prefix, part))
        elif isinstance(cur, dict) and str(part) in cur:
            walk(cur[str(part)], i + 1, (*prefix, str(part)))
        elif isinstance(cur, dict) and (last or cur.get(str(part)) is None):
            out.append((*prefix, str(part), *pattern[i + 1 :]))  # a default, written on assignment

    walk(data, 0, ())
    return [p for p in out if WILDCARD not in p]


def is_valid_path(data: dict[str, Any], path: PathKey, root: type = ModelSpec) -> bool:
    """True if ``path`` names something the spec models accept (written in ``data`` or a default field)."""
    cur: Any = data
    for i, part in enumerate(path):
        if isinstance(cur, list):
            if not (isinstance(part, int) and 0 <= part < len(cur)):
                return False
            cur = cur[part]
            continue
        if isinstance(cur, dict) and str(part) in cur:
            cur = cur[str(part)]
            continue
        if str(part) not in fields_at(root, data, path[:i]):
            return False
        cur = None
    return True


def suggest_path(data: dict[str, Any], path: PathKey, root: type = ModelSpec, *, shown_from: int = 0) -> str:
    """`` (did you mean 'a.b.c'?)`` for the path ``path`` most likely meant, or an empty string: the first
    part that names nothing is replaced by the closest key written there or field the spec models accept
    (a wildcard is tried on each item it matches); the path is shown from part ``shown_from`` on."""

    def walk(cur: Any, i: int, concrete: tuple[str | int, ...]) -> str:
        if i == len(path):
            return ""
        part = path[i]
        if part == WILDCARD:
            keys = list(range(len(cur))) if isinstance(cur, list) else list(cur) if isinstance(cur, dict) else []
            return next((h for k in keys if (h := walk(cur[k], i + 1, (*concrete, k)))), "")
        if _follows(cur, part):
            return walk(cur[int(part)] if isinstance(cur, list) else cur[str(part)], i + 1, (*concrete, part))
        written = [k for k in cur if isinstance(k, str)] if isinstance(cur, dict) else []
        options = sorted({*written, *fields_at(root, data, concrete)})
        hint = suggest(str(part), options) if options else ""
        if not hint:
            return ""
        meant = (*path[:i], hint.split("'")[1], *path[i + 1 :])[shown_from:]
        return f" (did you mean '{'.'.join(str(p) for p in meant)}'?)"

    return walk(data, 0, ())


def _follows(cur: Any, part: Any) -> bool:
    return (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)) or (
        isinstance(cur, dict) and str(part) in cur
    )


def assign(data: Any, path: PathKey, value: Any) -> None:
    """Set ``path`` in ``data`` to ``value``, creating missing mappings."""
    cur = data
    for part in path[:-1]:
        if isinstance(cur, list):
            cur = cur[int(part)]
        else:
            if cur.get(str(part)) is None:
                cur[str(part)] = {}
            cur = cur[str(part)]
    last = path[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[str(last)] = value
