"""Contracts every registered kind must keep; a new kind is picked up here without editing this file."""

from __future__ import annotations

import pytest
import torch
import yaml

import archdsl
from archdsl.compiler.count import measure
from archdsl.plan.shapes import ModelPlan
from archdsl.spec.load import dump_spec, spec_from_text, spec_to_data
from tests.examples import all_kinds, example_spec

KINDS = all_kinds()
IDS = [f"{r}-{n}" for r, n in KINDS]


def _spec(registry: str, name: str) -> archdsl.spec.ModelSpec:
    return spec_from_text(yaml.safe_dump(example_spec(registry, name)), f"{registry}-{name}.yaml")


def test_every_registry_has_kinds() -> None:
    assert {r for r, _ in KINDS} == {"stem", "transition", "block", "mixer", "attention", "head"}


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_plan_tree_round_trips_through_json(registry: str, name: str) -> None:
    import json

    plan = archdsl.plan_model(_spec(registry, name))
    data = json.loads(json.dumps(plan.to_data()))
    again = ModelPlan.from_data(data)
    assert again == plan and again.to_data() == plan.to_data()
    # the tree is the model: the recipes of the read-back plan build the same parameters
    from archdsl.compiler.build import build_from_plan

    assert sum(p.numel() for p in build_from_plan(again, "meta").parameters()) == plan.params


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_yaml_round_trip(registry: str, name: str) -> None:
    spec = _spec(registry, name)
    again = spec_from_text(dump_spec(spec))
    assert again == spec
    assert spec_to_data(again) == spec_to_data(spec)


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_planned_shapes_equal_real_shapes(registry: str, name: str) -> None:
    torch.manual_seed(0)
    spec = _spec(registry, name)
    plan = archdsl.plan_model(spec)
    model = archdsl.build_model(spec).eval()
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        stage.register_forward_hook(lambda m, i, o, k=f"stage{j}": seen.__setitem__(k, tuple(o.shape[1:])))
        for j, stage in enumerate(model.stages)
    ]
    hooks.append(model.stem.register_forward_hook(lambda m, i, o: seen.__setitem__("stem", tuple(o.shape[1:]))))
    with torch.no_grad():
        y = model(torch.randn(2, *plan.input))
    for h in hooks:
        h.remove()
    assert seen["stem"] == plan.stem.out_shape
    for stage in plan.stages:
        assert seen[f"stage{stage.index}"] == stage.out_shape, f"stage {stage.index}"
    assert tuple(y.shape) == (2, *plan.output)


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_forward_backward_finite(registry: str, name: str) -> None:
    torch.manual_seed(0)
    spec = _spec(registry, name)
    model = archdsl.build_model(spec).train()
    x = torch.randn(2, *archdsl.plan_model(spec).input)
    loss = model(x).square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_meta_counts_equal_plan(registry: str, name: str) -> None:
    spec = _spec(registry, name)
    plan = archdsl.plan_model(spec)
    got = measure(archdsl.build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params
    assert got.output == plan.output
    assert abs(got.flops - plan.flops) <= 0.02 * got.flops


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_torch_export(registry: str, name: str) -> None:
    spec = _spec(registry, name)
    plan = archdsl.plan_model(spec)
    model = archdsl.build_model(spec).eval()
    x = torch.randn(2, *plan.input)
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))
        x3 = torch.randn(3, *plan.input)
        torch.testing.assert_close(exported.module()(x3), model(x3))


@pytest.mark.parametrize(("registry", "name"), KINDS, ids=IDS)
def test_channels_last_gives_the_same_output(registry: str, name: str) -> None:
    torch.manual_seed(0)
    spec = _spec(registry, name)
    model = archdsl.build_model(spec).eval()
    x = torch.randn(2, *archdsl.plan_model(spec).input)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
