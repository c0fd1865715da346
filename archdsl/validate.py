"""Validate one file of any kind archdsl reads: a model spec or a search definition."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plural", "validate_file"]


def plural(n: int, noun: str) -> str:
    """``1 parameter``, ``2 parameters``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def validate_file(path: str | Path) -> str:
    """Read, validate and plan ``path``; returns a one-line description, raises ``ArchDSLError``."""
    from archdsl.planner import plan_model
    from archdsl.search.space import load_search
    from archdsl.spec.load import is_search_doc, parse_spec
    from archdsl.spec.source import read_yaml

    doc = read_yaml(path)
    if is_search_doc(doc):
        space = load_search(path)
        d = space.definition
        return (
            f"search over {plural(len(d.params), 'parameter')} of {space.base_doc.file}, "
            f"{d.budget.trials} trials, objectives {', '.join(space.objective_names)}"
        )
    spec = parse_spec(doc)
    plan = plan_model(spec)
    return f"{spec.name}, {plan.params:,} params, {plan.flops / 1e9:.2f} GFLOPs"
