"""A package's face, loaded lazily (PEP 562): names are imported from their modules on first use, so
importing a package costs nothing until something of it is used (the front half stays torch-free)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exported", "lazy_exports"]


def exported(table: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The names of a face table (``{module: names}``), sorted: the package's ``__all__``."""
    return sorted(name for names in table.values() for name in names)


def lazy_exports(package: str, table: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from the module ``table`` lists it under, once."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
