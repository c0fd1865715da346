"""Name -> item tables with "did you mean" errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Registry", "suggest"]

T = TypeVar("T")


def suggest(name: str, options: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string.

    Candidates are the options spelled alike (difflib), the options that are a word of ``name`` (``halo``
    in ``halo_attention``) and those that begin with it (``global``); of those, the one sharing the longest
    start with ``name`` wins, so a shared suffix such as ``_attention`` does not outweigh the word that names
    the kind."""
    words = set(name.lower().replace("-", "_").split("_"))
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    related = (o for o in options if o.lower() in words or o.lower().startswith(name.lower()))
    candidates = list(dict.fromkeys([*close, *related]))
    if not candidates:
        return ""

    def rank(option: str) -> tuple[int, float]:
        a, b = name.lower(), option.lower()
        prefix = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        return prefix, difflib.SequenceMatcher(None, name, option).ratio()

    return f" (did you mean '{max(candidates, key=rank)}'?)"


class Registry(Generic[T]):
    """A table of named items; registering a name twice is a programming error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} '{name}'{suggest(name, self.names())}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._items))

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
