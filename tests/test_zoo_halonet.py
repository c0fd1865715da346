"""Zoo specs of BoTNet-50, HaloNet H0-H7 and the HaloNet conv/attention trade-off rows (meta device only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from archdsl import ShapeError, build_model, load_spec, plan_model, spec_from_text
from archdsl.compiler.count import measure

SPECS = Path(__file__).resolve().parents[1] / "specs"
HALONET_M = {"h0": 5.5, "h1": 8.1, "h2": 9.4, "h3": 12.3, "h4": 19.1, "h5": 30.7, "h6": 43.4, "h7": 67.0}
TRADEOFF = ["tradeoff_conv_none", "tradeoff_conv_1", "tradeoff_conv_1_2", "tradeoff_conv_1_2_3"]
NAMES = ["botnet50", *(f"halonet_{k}" for k in HALONET_M), *TRADEOFF]


@pytest.mark.parametrize("name", NAMES)
def test_planned_counts_match_the_built_model(name: str) -> None:
    spec = load_spec(SPECS / f"{name}.yaml")
    assert spec.name == name
    plan = plan_model(spec)
    got = measure(build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params
    assert abs(got.flops - plan.flops) <= 0.02 * got.flops
    assert got.output == (1000,)


@pytest.mark.parametrize("key", list(HALONET_M))
def test_halonet_params_match_the_paper(key: str) -> None:
    plan = plan_model(load_spec(SPECS / f"halonet_{key}.yaml"))
    assert abs(plan.params / 1e6 - HALONET_M[key]) <= 0.05 * HALONET_M[key]


def test_botnet50_params() -> None:
    plan = plan_model(load_spec(SPECS / "botnet50.yaml"))
    assert plan.params == 20_852_008
    assert abs(plan.params - 20.8e6) <= 0.01 * 20.8e6
    assert [s.out_shape[1:] for s in plan.stages] == [(56, 56), (28, 28), (14, 14), (7, 7)]


@pytest.mark.parametrize("name", [f"halonet_{k}" for k in HALONET_M] + TRADEOFF)
def test_stage_shapes(name: str) -> None:
    plan = plan_model(load_spec(SPECS / f"{name}.yaml"))
    size = plan.input[-1]
    if name.endswith("h7") or name in TRADEOFF:
        assert size == 640
    assert [s.out_shape[1:] for s in plan.stages] == [(size // f, size // f) for f in (4, 8, 16, 32)]
    if size == 640:
        assert [s.out_shape[1] for s in plan.stages] == [160, 80, 40, 20]


def test_tradeoff_rows_differ_from_h7_only_in_mixers_and_name() -> None:
    h7 = load_spec(SPECS / "halonet_h7.yaml")
    for name, conv_stages in zip(TRADEOFF, [(), (0,), (0, 1), (0, 1, 2)], strict=True):
        row = load_spec(SPECS / f"{name}.yaml")
        assert row.model_copy(update={"name": h7.name, "stages": h7.stages}) == h7
        for i, (a, b) in enumerate(zip(row.stages, h7.stages, strict=True)):
            block: Any = a.blocks[0]
            ref: Any = b.blocks[0]
            assert len(a.blocks) == 1
            assert block.mixer.type == ("conv" if i in conv_stages else "halo")
            assert a.model_copy(update={"blocks": b.blocks}) == b
            assert block.model_copy(update={"mixer": ref.mixer}) == ref


def test_h7_at_600_px_is_a_located_shape_error() -> None:
    text = (SPECS / "halonet_h7.yaml").read_text()
    assert "size: 640" in text
    edited = text.replace("size: 640", "size: 600")
    spec = spec_from_text(edited, "h7.yaml")
    with pytest.raises(ShapeError) as info:
        plan_model(spec)
    (problem,) = info.value.problems
    assert problem.path.startswith("stages.1.")
    assert "75x75" in problem.message
    assert "block_size=10" in problem.message and "(input 600 px, stride 8)" in problem.message
    # located on the line of stages.1 (one line per stage), at the mixer of its block entry
    assert spec.source is not None
    stage_line, _ = spec.source.locations[("stages", 1)]
    loc = spec.source.locate(problem.path)
    assert loc.line == stage_line
    assert f"h7.yaml:{loc.line}:{loc.col}: stages.1." in str(info.value)
