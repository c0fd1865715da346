"""Errors that point at the YAML that caused them.

Every user-facing problem is an :class:`ArchDSLError` carrying one or more :class:`Problem` lines of the
form ``FILE:LINE:COL: dotted.path: what must hold, what was given``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

__all__ = [
    "ArchDSLError",
    "Location",
    "Problem",
    "SearchError",
    "ShapeError",
    "SpecError",
    "UsageError",
    "brief",
    "chain",
]


def chain(err: BaseException) -> Iterator[BaseException]:
    """``err``, then the exceptions it was raised from or while handling (``__cause__``, else ``__context__``),
    outermost first, each once (a chain may loop)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@dataclass(frozen=True)
class Location:
    """A position in a source file; ``line`` and ``col`` are 1-based, 0 when unknown."""

    file: str = "<spec>"
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True)
class Problem:
    """One located problem: where, which spec path, and what must hold."""

    path: str
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location is not None else ""
        path = f"{_cut(self.path, 160)}: " if self.path else ""
        return f"{where}{path}{_cut(self.message, 2000)}"


def _cut(text: str, width: int) -> str:
    """A problem stays one readable line, whatever a hostile file put in its keys or values."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else f"{text[: width - 30]}... ({len(text):,} characters)"


def brief(value: object, width: int = 60) -> str:
    """``repr(value)`` cut to about ``width`` characters, for messages that quote what was given: a 20 MB string
    or a list of a million items is named, not printed, and is never turned into text whole."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int) and value.bit_length() > 3 * width:  # str() of a huge int is slow or refused
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    if isinstance(value, str) and len(value) > width:
        return f"{value[: width - 20]!r}... ({len(value):,} characters)"
    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = width
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 3
    return short.repr(value)


class ArchDSLError(Exception):
    """Base error: a list of problems, printed one per line."""

    exit_code = 2
    """The CLI's exit code: 2 for bad input; subclasses for run-time failures use 1."""

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = (problems,) if isinstance(problems, Problem) else tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, path: str, message: str, location: Location | None = None) -> ArchDSLError:
        return cls(Problem(path, message, location))

    def located(self, locate: Callable[[str], Location]) -> ArchDSLError:
        """Return a copy whose problems without a location get ``locate(path)``."""
        problems = [p if p.location is not None else replace(p, location=locate(p.path)) for p in self.problems]
        return type(self)(problems)


class SpecError(ArchDSLError):
    """The YAML or the spec's values are invalid."""


class ShapeError(ArchDSLError):
    """The spec is well-formed but a feature-map shape rule does not hold."""


class SearchError(ArchDSLError):
    """A search definition is invalid."""


class UsageError(ArchDSLError):
    """A command-line problem (an option's value, a missing argument), named by the option:
    ``--storage: what must hold, what was given``."""

    @classmethod
    def option(cls, option: str, message: str) -> UsageError:
        return cls(Problem(option, message))

    def located(self, locate: Callable[[str], Location]) -> ArchDSLError:
        """Unchanged: a command-line problem lies in no file (``--out: ...``, not ``spec.yaml:2:1: --out: ...``)."""
        return self
