"""Validate one file of any kind archdsl reads."""

from __future__ import annotations

from pathlib import Path

__all__ = ["validate_file"]


def validate_file(path: str | Path) -> str:
    """Read, validate and plan ``path``; returns a one-line description, raises ``ArchDSLError``."""
    from archdsl.plan.planner import plan_model
    from archdsl.spec.load import load_spec

    spec = load_spec(path)
    plan = plan_model(spec)
    return f"{spec.name}, {plan.params:,} params, {plan.flops / 1e9:.2f} GFLOPs"
