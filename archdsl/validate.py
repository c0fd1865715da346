"""Validate one file of any kind archdsl reads: a model spec or a search definition."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archdsl.plan.shapes import ModelPlan
    from archdsl.spec.model import ModelSpec

__all__ = ["OVERSIZED", "Validated", "plural", "size_warnings", "validate_file"]

OVERSIZED = 1000
"""A model with more parameters than this many times its training images gets a warning."""


def plural(n: int, noun: str) -> str:
    """``1 parameter``, ``2 parameters``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Validated:
    """A file that passed: one line describing it, and what is allowed but likely a mistake."""

    summary: str
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.summary


def size_warnings(spec: ModelSpec, plan: ModelPlan) -> tuple[str, ...]:
    """A warning when the model has over :data:`OVERSIZED` times as many parameters as its dataset has training
    images (for datasets that know their size): it would memorise them, or not train at all."""
    from archdsl.kinds import DATASETS

    data = spec.train.data if spec.train is not None else None
    kind = DATASETS.get(data.name) if data is not None else None
    if kind is None or kind.train_images is None:
        return ()
    images = max(1, round(kind.train_images(data) * getattr(data, "fraction", 1.0)))  # train.data.fraction
    if plan.params <= OVERSIZED * images:
        return ()
    return (
        f"the model has {plan.params:,} parameters, over {OVERSIZED:,}x the {images:,} training images of "
        f"train.data.name={data.name} ({plan.params / images:,.0f} per image): expect it to memorise them or not "
        "to train; a smaller model, or more data",
    )


def validate_file(path: str | Path) -> Validated:
    """Read, validate and plan ``path``; returns what it is (and warnings), raises ``ArchDSLError``."""
    from archdsl.planner import plan_model
    from archdsl.search import require_tracking
    from archdsl.search.space import load_search
    from archdsl.spec.load import is_search_doc, parse_spec
    from archdsl.spec.source import read_yaml
    from archdsl.train.loggers import require_extras
    from archdsl.weights.check import check_init

    doc = read_yaml(path)
    if is_search_doc(doc):
        space = load_search(path)
        require_tracking(space)
        d = space.definition
        return Validated(
            f"search over {plural(len(d.params), 'parameter')} of {space.base_doc.file}, "
            f"{d.budget.trials} trials, objectives {', '.join(space.objective_names)}"
        )
    spec = parse_spec(doc)
    plan = plan_model(spec)
    require_extras(spec.train, spec.source.locate if spec.source is not None else None)
    check_init(spec)  # the file exists; it is read by training alone
    trains = isinstance(doc.data, dict) and "train" in doc.data  # a spec without one is a zoo entry, not a run
    warnings = size_warnings(spec, plan) if trains else ()
    return Validated(f"{spec.name}, {plan.params:,} params, {plan.flops / 1e9:.2f} GFLOPs", warnings)
