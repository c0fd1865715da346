"""What makes two searches one study: the searched space, not where its files lie or how long it runs.

A study keeps the search definition and base spec that created it. Another run joins it when the two agree
on everything but the base file's location (``base``), how workers keep in touch (``workers``) and how much
to run (``budget.trials``, ``budget.timeout_minutes``): a budget can be raised, and the study goes on. In the
base spec, where the runs are logged (``train.loggers``, ``train.mlflow``) changes no trial: tracking can be
switched on for the rest of a running search. Anything else (a parameter, a limit, the base spec) makes
another search, named path by path.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from archdsl.errors import brief

__all__ = ["FREE", "FREE_BASE", "differences", "fingerprint", "identity"]

FREE: tuple[tuple[str, ...], ...] = (("base",), ("workers",), ("budget", "trials"), ("budget", "timeout_minutes"))
"""Paths of the search file that may change without making another search."""

FREE_BASE: tuple[tuple[str, ...], ...] = (("train", "loggers"), ("train", "mlflow"))
"""Paths of the base spec that may change without making another search (where trials are logged)."""


def _without(data: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """A copy of ``data`` less ``paths``; a section the removal leaves empty goes too (``train: {loggers: [...]}``
    alone is no train section)."""
    kept = copy.deepcopy(dict(data))
    for path in paths:
        _drop(kept, path)
    return kept


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        data.pop(head, None)
        return
    child = data.get(head)
    if isinstance(child, dict):
        _drop(child, rest)
        if not child:
            del data[head]


def identity(definition: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The data two runs must agree on to share a study (``definition`` less :data:`FREE`, and ``base``)."""
    kept = _without(definition, FREE)
    if isinstance(kept.get("budget"), dict) and not kept["budget"]:
        del kept["budget"]  # a budget that only set the trials is no budget at all
    return {"definition": kept, "base": _without(base, FREE_BASE)}


def fingerprint(data: Mapping[str, Any]) -> str:
    """A short hash of :func:`identity`'s data."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(data, list) and data:
        return {k: v for i, value in enumerate(data) for k, v in _flat(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): data}


def differences(old: Mapping[str, Any], new: Mapping[str, Any], most: int = 8) -> list[str]:
    """``path: old -> new`` for each value two :func:`identity` datasets disagree on (search-file paths;
    ``base spec`` paths for the base), at most ``most`` of them and a count of the rest."""
    lines = []
    for part, label in (("definition", ""), ("base", "base spec ")):
        before, after = _flat(old.get(part, {})), _flat(new.get(part, {}))
        for key in sorted(set(before) | set(after)):
            if key in before and key in after and before[key] == after[key]:
                continue
            was = brief(before[key]) if key in before else "(absent)"
            now = brief(after[key]) if key in after else "(absent)"
            lines.append(f"{label}{key}: {was} -> {now}")
    return lines[:most] + ([f"and {len(lines) - most} more"] if len(lines) > most else [])
