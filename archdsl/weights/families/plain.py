"""What every map of one naming scheme does alike: it names the tensors of any file itself (no family to tell
apart), and reads the file's keys as they are."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["OneScheme"]

_M = TypeVar("_M", bound="OneScheme")


@dataclass(frozen=True)
class OneScheme:
    """A base of the maps that read one naming scheme (archdsl's, a ResNet's, ByobNet's, VOLO's)."""

    def resolve(self: _M, keys: Collection[str]) -> _M:
        return self

    def keys(self, state: Mapping[str, object]) -> dict[str, str]:
        return {key: key for key in state}
