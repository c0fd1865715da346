"""The versions of archdsl and the libraries whose behaviour decides a result, as recorded with it."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = ["RECORDED", "library_versions"]

RECORDED = ("archdsl", "torch", "lightning", "optuna", "pydantic")
"""Read from the installed distributions' metadata, so nothing here imports torch."""


@cache
def library_versions() -> dict[str, str]:
    """``{"archdsl": "0.1.0", "torch": "2.13.0+cpu", ...}``; ``"none"`` for a package that is not installed."""
    out = {}
    for name in RECORDED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "none"
    return out
