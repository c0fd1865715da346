"""The versions of archdsl and the libraries whose behaviour decides a result, as recorded with it."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = ["RECORDED", "__version__", "library_versions"]

RECORDED = ("archdsl", "torch", "lightning", "optuna", "pydantic")
"""Read from the installed distributions' metadata, so nothing here imports torch."""


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


__version__ = _version("archdsl")
"""archdsl's version: the installed distribution's metadata (``pyproject.toml``), stated nowhere else."""


@cache
def library_versions() -> dict[str, str]:
    """``{"archdsl": "0.1.0", "torch": "2.13.0+cpu", ...}``; ``"none"`` for a package that is not installed."""
    return {name: _version(name) for name in RECORDED}
