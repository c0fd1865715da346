"""PyYAML's parse errors, said where the mistake is and in words about indentation and colons.

PyYAML reports an indentation slip where its parser gave up, often a line after the slip and in terms of
its own tokens (``expected <block end>, but found '<block mapping start>'``). :func:`explain` turns the
common cases into a sentence located at the line to edit; anything else keeps PyYAML's words.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["explain"]

_KEY = re.compile(r"^(\s*)(- )?([^\s:#][^:#]*?):(\s|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _spaces(n: int) -> str:
    return f"{n} space{'' if n == 1 else 's'}"


def _previous(lines: list[str], index: int) -> int | None:
    """The nearest line above ``index`` that holds something other than a comment."""
    for i in range(index - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return i
    return None


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[str, int, int] | None:
    """``(message, line, column)`` (1-based) for a known kind of mistake, else None."""
    mark = exc.problem_mark
    if mark is None:
        return None
    lines = text.splitlines()
    row = mark.line
    problem = exc.problem or ""
    if "'\\t'" in problem or "\t" in problem:
        return "a tab indents this line; YAML indentation must be spaces", mark.line + 1, mark.column + 1
    if row >= len(lines):
        return None
    line = lines[row]
    before = _previous(lines, row)
    if problem == "mapping values are not allowed here" and before is not None:
        above = lines[before]
        if not _KEY.match(above) and ":" not in above.split("#", 1)[0]:
            return (
                f"this line has no ':' after its key, so line {row + 1} was read as the rest of its value; "
                f"write 'key: value' (a colon and a space)",
                before + 1,
                _indent(above) + 1,
            )
        if _indent(line) > _indent(above):
            return (
                f"this key is indented {_spaces(_indent(line))}, more than the key on line {before + 1} "
                f"({_indent(above)}): it reads as the continuation of that line's value; indent it like the "
                f"keys it belongs with",
                row + 1,
                _indent(line) + 1,
            )
        return (
            "a ': ' inside a value; quote the value if the colon belongs to it",
            mark.line + 1,
            mark.column + 1,
        )
    if problem.startswith("expected <block end>") and before is not None:
        return (
            f"this line is indented {_spaces(_indent(line))}, which lines up with no key above it (line "
            f"{before + 1} is indented {_indent(lines[before])}); align it with the keys of the mapping it "
            f"belongs to",
            row + 1,
            _indent(line) + 1,
        )
    if problem == "could not find expected ':'" and exc.context_mark is not None:
        start = exc.context_mark
        return (
            "a key without ':' (write 'key: value', a colon and a space)",
            start.line + 1,
            start.column + 1,
        )
    return None
