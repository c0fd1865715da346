"""Every spec in specs/: valid, planned counts equal the meta-built model's, and compilable without graph breaks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.compiler.count import measure
from tests.zoo import representatives

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
IDS = [p.stem for p in SPECS]


def test_zoo_is_complete() -> None:
    names = set(IDS)
    expected = {
        "resnet50",
        "botnet50",
        *(f"halonet_h{i}" for i in range(8)),
        *(f"volo_d{i}" for i in range(1, 6)),
        "se_resnet50",
        "cbam_resnet50",
        "nonlocal_resnet50",
    }
    assert expected <= names
    assert {"tradeoff_conv_none", "tradeoff_conv_1", "tradeoff_conv_1_2", "tradeoff_conv_1_2_3"} <= names


NOT_LITERATURE = {
    "block": {"basic", "bottleneck", "mbconv", "outlooker", "transformer"},
    "attention": {"none"},
    "transition": {"patch_merge"},
}


def test_every_attention_module_has_a_digits_spec() -> None:
    """One small 16-px digits spec per module of the attention literature, using that module."""
    from archdsl.kinds import ATTENTION, BLOCKS, TRANSITIONS, load_kinds

    load_kinds()
    modules = [
        (role, name)
        for role, table in (("block", BLOCKS), ("attention", ATTENTION), ("transition", TRANSITIONS))
        for name in table.names()
        if name not in NOT_LITERATURE[role]
    ]
    assert len(modules) >= 20
    for role, name in modules:
        assert f"digits_{name}" in IDS, f"no specs/digits_{name}.yaml for the {role} '{name}'"
        spec = archdsl.load_spec(SPECS[IDS.index(f"digits_{name}")])
        plan = archdsl.plan_model(spec)
        assert plan.input == (1, 16, 16) and spec.train is not None and spec.train.data.name == "digits"
        assert name in {n.type for n in plan.nodes()}, f"specs/digits_{name}.yaml does not use '{name}'"


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_plan_equals_meta_build(path: Path) -> None:
    spec = archdsl.load_spec(path)
    assert spec.name == path.stem
    plan = archdsl.plan_model(spec)
    got = measure(archdsl.build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params
    assert got.output == plan.output
    assert abs(got.flops - plan.flops) <= 0.02 * got.flops, (got.flops, plan.flops)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_plan_tree_round_trips_through_json(path: Path) -> None:
    import json

    from archdsl.plan.shapes import ModelPlan

    plan = archdsl.plan_model(archdsl.load_spec(path))
    text = json.dumps(plan.to_data())
    assert ModelPlan.from_data(json.loads(text)) == plan
    assert json.dumps(ModelPlan.from_data(json.loads(text)).to_data()) == text


@pytest.mark.parametrize("path", representatives(), ids=[p.stem for p in representatives()])
def test_compiles_without_graph_breaks(path: Path) -> None:
    """Graph breaks depend on the code a model runs, not on its depth: one spec per combination of kinds and
    options (``tests/zoo.py``; HaloNet-H0 and H3 stand for H1-H7 and the trade-off rows, VOLO-D1 for D2-D5)."""
    spec = archdsl.load_spec(path)
    plan = archdsl.plan_model(spec)
    model = archdsl.build_model(spec, device="meta").eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        y = compiled(torch.empty(2, *plan.input, device="meta"))
    assert tuple(y.shape) == (2, *plan.output)


def test_resnet50_matches_torchvision_layout() -> None:
    plan = archdsl.plan_model(archdsl.load_spec(SPECS[IDS.index("resnet50")]))
    assert plan.params == 25_557_032
    assert [s.out_shape for s in plan.stages] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def _nonlocal_params(c: int) -> int:
    """One embedded-Gaussian block at C channels, inner C/2 (Wang et al. section 4.1): theta, phi, g are 1x1
    convs with bias, W_z a 1x1 conv without bias, then BN (scale and shift)."""
    inner = c // 2
    return 3 * (c * inner + inner) + inner * c + 2 * c


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("se_resnet50", 28_088_024),  # torchvision/timm's SE-ResNet-50 count (reduction 16)
        ("cbam_resnet50", 28_088_024 + 16 * (2 * 7 * 7 + 2)),  # SE's MLP + 7x7 conv (2 -> 1) and BN per block
        ("nonlocal_resnet50", 25_557_032 + 2 * _nonlocal_params(512) + 3 * _nonlocal_params(1024)),
    ],
)
def test_attention_resnets_have_the_counted_parameters(name: str, params: int) -> None:
    plan = archdsl.plan_model(archdsl.load_spec(SPECS[IDS.index(name)]))
    assert plan.params == params
    kinds = [n.type for n in plan.nodes()]
    if name == "nonlocal_resnet50":
        assert kinds.count("nonlocal") == 5
        assert [s.out_shape for s in plan.stages][1:3] == [(512, 28, 28), (1024, 14, 14)]
    else:
        assert kinds.count(name.split("_")[0]) == 16


def test_default_backend_compiles_a_small_hybrid() -> None:
    torch.manual_seed(0)
    spec = archdsl.load_spec(SPECS[IDS.index("hybrid_tiny")])
    model = archdsl.build_model(spec).eval()
    x = torch.randn(2, 3, 32, 32)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_halonet_h7_at_600px_is_a_located_shape_error(tmp_path: Path) -> None:
    from archdsl.cli import main

    text = SPECS[IDS.index("halonet_h7")].read_text().replace("size: 640", "size: 600")
    bad = tmp_path / "h7_600.yaml"
    bad.write_text(text)
    line = [i for i, row in enumerate(text.splitlines(), 1) if row.lstrip().startswith("- {channels:")][1]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["validate", str(bad)]) == 2
    message = err.getvalue().strip()
    assert message.startswith(f"{bad}:{line}:")
    assert (
        "stages.1.blocks.0.mixer: feature map 75x75 is not divisible by block_size=10 (input 600 px, stride 8)"
        in message
    )
