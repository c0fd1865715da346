"""A kind's name is stated once, in its spec model's ``Literal`` tag; the memory layout its module needs is
declared by the kind, and the plan reads it from there (the plan names no kind)."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Literal

import pytest

import archdsl.spec.model  # noqa: F401  (loads the kinds and builds the spec models)
from archdsl.kinds import REGISTRIES, type_name
from archdsl.mixers.halo import HaloMixerSpec
from archdsl.plan import shapes
from archdsl.plan.layout import layout_of
from archdsl.spec.base import SpecModel

ROOT = Path(__file__).resolve().parent.parent
KINDS = [(role, name, kind) for role, registry in REGISTRIES.items() for name, kind in registry.items()]


def test_type_name_reads_the_literal_tag() -> None:
    class Untagged(SpecModel):
        type: str

    class Twice(SpecModel):
        type: Literal["a", "b"]

    assert type_name(HaloMixerSpec) == "halo"
    for spec in (Untagged, Twice):
        with pytest.raises(TypeError, match=r"\.type must be a Literal of one string"):
            type_name(spec)


@pytest.mark.parametrize(("role", "name", "kind"), KINDS, ids=[f"{r}-{n}" for r, n, _ in KINDS])
def test_each_kind_states_its_name_once_in_its_module(role: str, name: str, kind: object) -> None:
    spec = kind.spec  # type: ignore[attr-defined]
    assert name == kind.name == type_name(spec, "name" if role == "dataset" else "type")  # type: ignore[attr-defined]
    source = Path(inspect.getfile(sys.modules[spec.__module__]))
    strings = [n for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.Constant) and n.value == name]
    assert len(strings) == 1, f"{source.relative_to(ROOT)} writes '{name}' {len(strings)} times"


def test_the_kinds_declare_their_layout_and_the_plan_names_none() -> None:
    nchw = {(role, name) for role, name, kind in KINDS if getattr(kind, "layout", "any") == "nchw"}
    assert nchw == {("mixer", "halo"), ("mixer", "global_attention")}
    assert all(layout_of(role, name) == getattr(kind, "layout", "any") for role, name, kind in KINDS)
    assert layout_of("pos_embed", "pos_embed") == "any"
    plan_source = Path(inspect.getfile(shapes)).read_text()
    assert '"halo"' not in plan_source and '"global_attention"' not in plan_source
