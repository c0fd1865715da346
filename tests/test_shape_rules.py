"""Every shape rule of every kind: the spec path it blames and what it says, and the plan tree's roles."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ShapeError
from archdsl.spec.load import spec_from_text

STEM = "{type: conv, channels: 16}"
HEAD = "{type: classifier, num_classes: 4}"


def _spec(stages: str, stem: str = STEM, head: str = HEAD, size: int = 16) -> str:
    return f"name: rules\ninput: {{channels: 3, size: {size}}}\nstem: {stem}\nstages: {stages}\nhead: {head}\n"


BOT = "{{channels: {c}, stride: {s}, blocks: [{{type: bottleneck, width: {w}, mixer: {m}}}]}}"


def _bot(mixer: str, c: int = 32, s: int = 1, w: int = 8, size: int = 16) -> str:
    """A model whose one stage is a bottleneck with ``mixer``."""
    return _spec("[" + BOT.format(c=c, s=s, w=w, m=mixer) + "]", size=size)


HALO = "{type: halo, block_size: %d, halo_size: 1, num_heads: %d%s}"
OUTLOOKER = "[{channels: 16, blocks: [{type: outlooker, num_heads: 2}]}]"
BASIC = "[{channels: 16, blocks: [{type: basic}]}]"

CASES = {
    "conv mixer groups": (
        _bot("{type: conv, groups: 5}", w=12),
        "stages.0.blocks.0.mixer.groups: bottleneck width=12 must be divisible by groups=5",
    ),
    "halo stride": (
        _bot(HALO % (3, 2, ""), s=3, size=12),
        "stages.0.blocks.0.mixer: halo attention applies stride 1 or 2, the stage asks for 3",
    ),
    "halo block and stride": (
        _bot(HALO % (3, 2, ""), s=2, size=12),
        "stages.0.blocks.0.mixer.block_size: block_size=3 must be divisible by the stride 2",
    ),
    "halo map": (
        _bot(HALO % (5, 2, "")),
        "stages.0.blocks.0.mixer: feature map 16x16 is not divisible by block_size=5 (input 16 px, stride 1)",
    ),
    "halo past the map": (
        _bot("{type: halo, block_size: 4, halo_size: 9, num_heads: 2}", size=8),
        "stages.0.blocks.0.mixer.halo_size: halo_size=9 reaches past the whole 8x8 feature map (a 22x22 window "
        "of mostly padding); use at most 7",
    ),
    "halo value width": (
        _bot(HALO % (4, 2, ", value_ratio: 1.1")),
        "stages.0.blocks.0.mixer.value_ratio: value width value_ratio*w must be a positive integer, got 1.1*8=8.8",
    ),
    "halo no value width": (
        _bot(HALO % (4, 2, ", value_ratio: 1.0e-10")),
        "stages.0.blocks.0.mixer.value_ratio: value width value_ratio*w must be a positive integer, got 1e-10*8=8e-10",
    ),
    "halo heads": (
        _bot(HALO % (4, 3, "")),
        "stages.0.blocks.0.mixer.num_heads: num_heads=3 must divide the bottleneck width w=8",
    ),
    "halo value heads": (
        _bot(HALO % (4, 4, ", value_ratio: 1.25")),
        "stages.0.blocks.0.mixer.num_heads: num_heads=4 must divide the value width r_v*w=10",
    ),
    "global heads": (
        _bot("{type: global_attention, num_heads: 3}"),
        "stages.0.blocks.0.mixer.num_heads: num_heads=3 must divide the bottleneck width w=8",
    ),
    "global stride": (
        _bot("{type: global_attention, num_heads: 2}", s=3, size=12),
        "stages.0.blocks.0.mixer: global attention applies stride 1 or 2, the stage asks for 3",
    ),
    "global map": (
        _bot("{type: global_attention, num_heads: 2}", s=2, size=15),
        "stages.0.blocks.0.mixer: feature map 15x15 is not divisible by the stride 2",
    ),
    "bottleneck expansion": (
        _spec("[{channels: 30, blocks: [{type: bottleneck, expansion: 4}]}]"),
        "stages.0.blocks.0.expansion: stage channels=30 must be divisible by expansion=4",
    ),
    "mbconv width": (
        _spec("[{channels: 16, blocks: [{type: mbconv, expand_ratio: 0.01}]}]"),
        "stages.0.blocks.0.expand_ratio: the expanded width round(16 x 0.01) must be positive, got 0",
    ),
    "token block channels": (
        _spec("[{channels: 32, blocks: [{type: transformer, num_heads: 2}]}]"),
        "stages.0.blocks.0: a transformer block keeps its 16 input channels but the stage declares 32",
    ),
    "token block stride": (
        _spec("[{channels: 16, stride: 2, blocks: [{type: outlooker, num_heads: 2}]}]"),
        "stages.0.blocks.0: a outlooker block cannot apply the stage's stride 2",
    ),
    "token block heads": (
        _spec("[{channels: 16, blocks: [{type: transformer, num_heads: 3}]}]"),
        "stages.0.blocks.0.num_heads: num_heads=3 must divide the block's channels 16",
    ),
    "token block mlp": (
        _spec("[{channels: 16, blocks: [{type: transformer, num_heads: 2, mlp_ratio: 0.01}]}]"),
        "stages.0.blocks.0.mlp_ratio: mlp_ratio=0.01 gives an empty MLP at 16 channels",
    ),
    "outlook windows": (
        _spec("[{channels: 16, blocks: [{type: outlooker, num_heads: 2, kernel_size: 3, padding: 0}]}]"),
        "stages.0.blocks.0.padding: kernel_size=3, padding=0, attn_stride=2 unfold the 16x16 map into 7x7 windows",
    ),
    "patch embed": (
        _spec(OUTLOOKER, stem="{type: patch_embed, channels: 16, hidden: 8, patch_size: 6}"),
        "stem.patch_size: the input 16x16 must be divisible by patch_size=6",
    ),
    "patch merge": (
        _spec("[{channels: 16, stride: 3, transition: {type: patch_merge}, blocks: [{type: basic}]}]"),
        "stages.0.transition: feature map 16x16 must be divisible by the stage stride 3",
    ),
    "up-sampling without a transition": (
        _spec("[{channels: 16, stride: 1/2, blocks: [{type: basic}]}]"),
        "stages.0.stride: stride 1/2 up-samples the map, which only a transition that up-samples can apply (e.g. "
        "`transition: {type: carafe}`); the stage has no transition",
    ),
    "patch merge cannot up-sample": (
        _spec("[{channels: 16, stride: 1/4, transition: {type: patch_merge}, blocks: [{type: basic}]}]"),
        "stages.0.stride: stride 1/4 up-samples the 16x16 map to 64x64, which only a transition that up-samples "
        "can apply (e.g. `transition: {type: carafe}`); patch_merge gives 16x16",
    ),
    "carafe cannot down-sample": (
        _spec("[{channels: 16, stride: 2, transition: {type: carafe}, blocks: [{type: basic}]}]"),
        "stages.0.stride: a carafe transition up-samples, so the stage's stride must be 1/2 or 1/4, got 2",
    ),
    "stride after up-sampling": (
        _spec(
            "[{channels: 16, stride: 1/2, transition: {type: carafe}, blocks: [{type: basic}]}, "
            "{channels: 32, blocks: [{type: bottleneck, width: 8, mixer: " + HALO % (5, 2, "") + "}]}]"
        ),
        "stages.1.blocks.0.mixer: feature map 32x32 is not divisible by block_size=5 (input 16 px, stride 1/2)",
    ),
    "stride down then up": (
        _spec(
            "[{channels: 16, stride: 4, blocks: [{type: basic}]}, {channels: 16, stride: 1/2, transition: "
            "{type: carafe}, blocks: [{type: stn, pool_size: 9}]}]"
        ),
        "stages.1.blocks.0.pool_size: pool_size=9 must be at most the sides of the 8x8 feature map (input 16 px, "
        "stride 2)",
    ),
    "stn stride": (
        _spec("[{channels: 16, stride: 2, blocks: [{type: stn}]}]"),
        "stages.0.blocks.0: a stn block cannot apply the stage's stride 2",
    ),
    "class attention heads": (
        _spec(BASIC, head="{type: class_attention, num_classes: 4, num_heads: 3}"),
        "head.num_heads: num_heads=3 must divide the feature channels 16",
    ),
    "class attention mlp": (
        _spec(BASIC, head="{type: class_attention, num_classes: 4, num_heads: 2, mlp_ratio: 0.01}"),
        "head.mlp_ratio: mlp_ratio=0.01 gives an empty MLP at 16 channels",
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(CASES.values()), ids=list(CASES))
def test_shape_rule_blames_the_spec_path(text: str, expected: str) -> None:
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "rules.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("rules.yaml:") and expected in line, line


def test_every_node_has_its_role_and_plain_integer_costs() -> None:
    text = _spec(
        "[{channels: 32, stride: 2, transition: {type: patch_merge}, pos_embed: true, blocks: "
        "[{type: transformer, num_heads: 2}]}, {channels: 64, stride: 2, blocks: [{type: bottleneck, width: 16, "
        "mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}, attention: se}]}]"
    )
    plan = archdsl.plan_model(spec_from_text(text))
    roles = [(n.role, n.type) for n in plan.nodes()]
    assert roles == [
        ("stem", "conv"),
        ("transition", "patch_merge"),
        ("pos_embed", "pos_embed"),
        ("block", "transformer"),
        ("block", "bottleneck"),
        ("mixer", "halo"),
        ("attention", "se"),
        ("head", "classifier"),
    ]
    assert [n.path for n in plan.nodes()] == [
        "stem",
        "stages.0.transition",
        "stages.0.pos_embed",
        "stages.0.blocks.0",
        "stages.1.blocks.0",
        "stages.1.blocks.0.mixer",
        "stages.1.blocks.0.attention",
        "head",
    ]
    for node in plan.nodes():
        assert type(node.params) is int and type(node.flops) is int, node.path
        assert node.params >= sum(c.params for c in node.children)
    data = plan.to_data()
    assert [s["params"] for s in data["stages"]] == [s.params for s in plan.stages]
    assert [s["flops"] for s in data["stages"]] == [s.flops for s in plan.stages]
    assert (data["params"], data["flops"]) == (plan.params, plan.flops)
