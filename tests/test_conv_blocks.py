"""Contracts of the convolutional part types: ``basic`` and ``mbconv`` blocks, the ``tiered`` stem and SE.

Each is checked in a small full model: planned shapes == real shapes on a CPU forward, planned parameters
== real parameters, planned FLOPs == the meta-device count, finite forward and backward; and the modules
are compared in float64 with a direct formulation of the papers' equations.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archdsl import ShapeError, SpecError, build_model, plan_model, spec_from_text
from archdsl.compiler.count import measure
from archdsl.compiler.instantiate import instantiate
from archdsl.kinds import BLOCKS
from archdsl.nn.basic import BasicBlock
from archdsl.nn.drop_path import DropPath
from archdsl.nn.mbconv import MBConv
from archdsl.nn.se import SqueezeExcite
from archdsl.nn.tiered_stem import TieredStem
from archdsl.plan.shapes import Ctx
from tests.references import bn_ref, conv_bn_ref, conv_ref


def _model(stem: str, stages: list[str], size: int = 16, classes: int = 5) -> str:
    body = "\n".join(f"  - {s}" for s in stages)
    head = f"{{type: classifier, num_classes: {classes}}}"
    return f"name: t\ninput: {{channels: 3, size: {size}}}\nstem: {stem}\nstages:\n{body}\nhead: {head}\n"


STEM16 = "{type: conv, channels: 16, kernel_size: 3, stride: 1}"


def _mb(t: float, se: float, k: int = 3, repeat: int = 1) -> str:
    return f"{{type: mbconv, repeat: {repeat}, expand_ratio: {t}, se_ratio: {se}, kernel_size: {k}}}"


CASES = {
    "basic": _model(
        STEM16,
        [
            "{channels: 16, stride: 1, blocks: [{type: basic, repeat: 2}]}",
            "{channels: 32, stride: 2, blocks: [{type: basic, repeat: 2}]}",
        ],
    ),
    "basic_k5_silu_odd_map": _model(
        STEM16,
        [
            "{channels: 24, stride: 2, blocks: [{type: basic, kernel_size: 5, act: silu, zero_init_last: false}]}",
            "{channels: 24, stride: 2, blocks: [{type: basic, kernel_size: 1}]}",
        ],
        size=15,
    ),
    "tiered_pool": _model(
        "{type: tiered, channels: [8, 12, 16], pool: max}",
        ["{channels: 32, stride: 2, blocks: [{type: basic}]}"],
        size=32,
    ),
    "tiered_default_stride1": _model(
        "{type: tiered, stride: 1, act: silu}",
        ["{channels: 64, stride: 1, blocks: [{type: basic}]}"],
        size=8,
    ),
    "tiered_single_layer": _model(
        "{type: tiered, channels: [12]}",
        ["{channels: 12, stride: 1, blocks: [" + _mb(1, 0.25) + "]}"],
        size=9,
    ),
}
for _t in (1, 4.0):
    for _se in (0, 0.25):
        for _s in (1, 2):
            CASES[f"mbconv_t{_t}_se{_se}_s{_s}"] = _model(
                STEM16,
                [
                    "{channels: 16, stride: 1, blocks: [" + _mb(_t, _se) + "]}",
                    f"{{channels: 24, stride: {_s}, blocks: [" + _mb(_t, _se, k=5, repeat=2) + "]}",
                ],
            )
CASES["mixed_all"] = _model(
    "{type: tiered, channels: [8, 16], pool: max}",
    [
        "{channels: 16, stride: 1, blocks: [{type: basic}, " + _mb(6, 0.25) + "]}",
        "{channels: 40, stride: 2, blocks: [" + _mb(2.5, 0.1, k=7) + ", {type: basic, repeat: 1}]}",
    ],
    size=32,
)


def _finite_grads(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("name", sorted(CASES))
def test_planned_equals_built(name: str) -> None:
    spec = spec_from_text(CASES[name])
    plan = plan_model(spec)
    torch.manual_seed(0)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == plan.params

    # Every part's real output shape is its planned shape (CPU forward, training mode, batch 2).
    x = torch.randn(2, *plan.input)
    y = model.stem(x)
    assert tuple(y.shape[1:]) == plan.stem.out_shape
    for stage_plan, stage in zip(plan.stages, model.stages, strict=True):
        for part, module in zip(stage_plan.parts, stage, strict=True):
            assert tuple(y.shape[1:]) == part.in_shape, part.path
            y = module(y)
            assert tuple(y.shape[1:]) == part.out_shape, part.path
    out = model.head(y)
    assert tuple(out.shape[1:]) == plan.output
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    _finite_grads(model)

    meta = build_model(spec, device="meta")
    got = measure(meta, plan.input)
    assert got.params == plan.params
    assert got.output == plan.output
    assert abs(got.flops - plan.flops) <= 0.02 * got.flops
    assert got.flops == plan.flops  # the analytic count is exact for these blocks


# ---- float64 references written from the papers' equations -------------------------------------------


def _randomize_bn(model: nn.Module) -> None:
    """Random affine parameters and running statistics so zero-initialised scales hide nothing."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)


def _se_ref(x: torch.Tensor, w1, b1, w2, b2, act=torch.relu) -> torch.Tensor:
    """Hu et al. eq. 2-4: z = mean_hw(x); s = sigmoid(W2 act(W1 z + b1) + b2); y = s * x."""
    z = x.mean(dim=(2, 3))  # (B, C)
    s = torch.sigmoid(act(z @ w1.T + b1) @ w2.T + b2)  # (B, C)
    return x * s[:, :, None, None]


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_se_matches_equations(act: str) -> None:
    torch.manual_seed(1)
    se = SqueezeExcite(6, 2, act).double()
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    w1, b1 = se.reduce.weight[:, :, 0, 0], se.reduce.bias
    w2, b2 = se.expand.weight[:, :, 0, 0], se.expand.bias
    ref = _se_ref(x, w1, b1, w2, b2, torch.relu if act == "relu" else F.silu)
    torch.testing.assert_close(se(x), ref, rtol=1e-12, atol=1e-12)
    assert sum(p.numel() for p in se.parameters()) == 6 * 2 + 2 + 2 * 6 + 6


@pytest.mark.parametrize(("c_in", "c_out", "stride", "k"), [(8, 8, 1, 3), (8, 12, 2, 3), (6, 6, 2, 5)])
def test_basic_block_matches_reference(c_in: int, c_out: int, stride: int, k: int) -> None:
    torch.manual_seed(2)
    block = BasicBlock(c_in, c_out, stride, k, "relu", zero_init_last=True, drop_path=0.0).double().eval()
    assert torch.all(block.conv2[1].weight == 0)  # zero-initialised last BN scale
    x = torch.randn(2, c_in, 9, 9, dtype=torch.float64)
    projected = stride != 1 or c_in != c_out
    assert isinstance(block.shortcut, nn.Sequential) == projected
    short = conv_bn_ref(x, block.shortcut, act=False) if projected else x
    # Zero-initialised: the block starts as act(shortcut(x)).
    torch.testing.assert_close(block(x), torch.relu(short), rtol=1e-12, atol=1e-12)
    _randomize_bn(block)
    short = conv_bn_ref(x, block.shortcut, act=False) if projected else x
    y = conv_bn_ref(conv_bn_ref(x, block.conv1, act=True), block.conv2, act=False)
    torch.testing.assert_close(block(x), torch.relu(y + short), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("c_in", "c_out", "mid", "stride", "se", "expand"),
    [(8, 8, 32, 1, 2, True), (8, 12, 48, 2, 2, True), (8, 8, 8, 1, 0, False), (8, 16, 8, 2, 3, False)],
)
def test_mbconv_matches_reference(c_in, c_out, mid, stride, se, expand) -> None:
    torch.manual_seed(3)
    attention = SqueezeExcite(mid, se, "relu") if se else None
    block = MBConv(c_in, c_out, mid, 5, stride, "relu", drop_path=0.0, expand=expand, attention=attention)
    block = block.double().eval()
    _randomize_bn(block)
    x = torch.randn(2, c_in, 9, 9, dtype=torch.float64)
    h = conv_bn_ref(x, block.expand, act=True) if expand else x
    # Depthwise: output channel i sees only input channel i.
    dw = block.depthwise[0]
    assert dw.groups == mid and dw.weight.shape == (mid, 1, 5, 5)
    h = torch.relu(bn_ref(conv_ref(h, dw), block.depthwise[1]))
    if se:
        h = _se_ref(
            h,
            block.se.reduce.weight[:, :, 0, 0],
            block.se.reduce.bias,
            block.se.expand.weight[:, :, 0, 0],
            block.se.expand.bias,
        )
    else:
        assert isinstance(block.se, nn.Identity)
    y = conv_bn_ref(h, block.project, act=False)  # linear bottleneck: no activation
    if stride == 1 and c_in == c_out:
        y = x + y
    torch.testing.assert_close(block(x), y, rtol=1e-12, atol=1e-12)


def test_tiered_stem_matches_reference() -> None:
    torch.manual_seed(4)
    stem = TieredStem(3, [4, 6, 8], stride=2, pool=True, act="relu").double().eval()
    _randomize_bn(stem)
    x = torch.randn(2, 3, 17, 17, dtype=torch.float64)
    y = x
    for i, layer in enumerate(list(stem)[:3]):
        assert layer[0].kernel_size == (3, 3) and layer[0].stride == ((2, 2) if i == 0 else (1, 1))
        y = conv_bn_ref(y, layer, act=True)
    y = F.max_pool2d(y, 3, 2, 1)
    torch.testing.assert_close(stem(x), y, rtol=1e-12, atol=1e-12)
    assert y.shape == (2, 8, 5, 5)


# ---- spec-level behaviour -------------------------------------------------------------------------------


def test_mbconv_widths_follow_efficientnet() -> None:
    text = _model(STEM16, ["{channels: 24, stride: 2, blocks: [" + _mb(6, 0.25) + "]}"])
    model = build_model(spec_from_text(text))
    block = model.stages[0][0]
    assert block.expand[0].out_channels == 96  # round(16 * 6)
    assert block.se.reduce.out_channels == 4  # SE width relative to the block input: 16 * 0.25
    assert block.se.reduce.in_channels == 96  # ... applied on the expanded features
    assert not block.residual and isinstance(block.drop_path, nn.Identity)


def test_expand_ratio_one_has_no_expansion_conv() -> None:
    text = _model(STEM16, ["{channels: 16, stride: 1, blocks: [" + _mb(1, 0) + "]}"])
    block = build_model(spec_from_text(text)).stages[0][0]
    assert isinstance(block.expand, nn.Identity) and block.residual
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2  # depthwise + projection


def test_residual_starts_as_identity_with_zero_projection() -> None:
    torch.manual_seed(5)
    block = MBConv(8, 8, 16, 3, 1, "silu", drop_path=0.0, expand=True, attention=SqueezeExcite(16, 2, "silu")).eval()
    nn.init.zeros_(block.project[1].weight)
    nn.init.zeros_(block.project[1].bias)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("kind", ["basic", "mbconv"])
def test_drop_path_from_ctx(kind: str) -> None:
    spec = spec_from_text(_model(STEM16, ["{channels: 16, stride: 1, blocks: [{type: " + kind + "}]}"]))
    block_spec = spec.stages[0].blocks[0]
    node = BLOCKS.get(kind).plan(block_spec, Ctx((16, 8, 8), "stages.0.blocks.0", 16, 1, drop_path=0.25))
    module = instantiate(node.recipe)
    assert isinstance(module.drop_path, DropPath) and module.drop_path.p == 0.25
    torch.manual_seed(6)
    x = torch.randn(64, 16, 4, 4)
    module.eval()
    torch.testing.assert_close(module(x), module(x))  # deterministic in eval mode
    module.train()
    y = module(x)
    assert torch.isfinite(y).all()


def test_drop_path_not_used_without_residual() -> None:
    spec = spec_from_text(_model(STEM16, ["{channels: 24, stride: 2, blocks: [{type: mbconv}]}"]))
    block_spec = spec.stages[0].blocks[0]
    node = BLOCKS.get("mbconv").plan(block_spec, Ctx((16, 8, 8), "stages.0.blocks.0", 24, 2, drop_path=0.25))
    module = instantiate(node.recipe)
    assert isinstance(module.drop_path, nn.Identity)


@pytest.mark.parametrize(
    ("block", "field"),
    [("{type: basic, kernel_size: 4}", "kernel_size"), ("{type: mbconv, kernel_size: 2}", "kernel_size")],
)
def test_even_kernel_is_a_located_spec_error(block: str, field: str) -> None:
    text = _model(STEM16, ["{channels: 16, stride: 1, blocks: [" + block + "]}"])
    with pytest.raises(SpecError) as err:
        spec_from_text(text, file="x.yaml")
    message = str(err.value)
    assert f"stages.0.blocks.0.{field}" in message and "must be odd" in message
    assert message.startswith("x.yaml:5:")


def test_zero_expanded_width_is_a_located_shape_error() -> None:
    text = _model(STEM16, ["{channels: 16, stride: 1, blocks: [{type: mbconv, expand_ratio: 0.01}]}"])
    spec = spec_from_text(text, file="x.yaml")
    with pytest.raises(ShapeError) as err:
        plan_model(spec)
    message = str(err.value)
    assert "stages.0.blocks.0.expand_ratio" in message and "must be positive" in message
    assert message.startswith("x.yaml:5:")


@pytest.mark.parametrize("stem", ["{type: tiered, channels: []}", "{type: tiered, channels: [8, 0]}"])
def test_tiered_stem_channels_are_validated(stem: str) -> None:
    with pytest.raises(SpecError, match=r"stem\.channels"):
        spec_from_text(_model(stem, ["{channels: 16, blocks: [{type: basic}]}"]))


def test_tiered_stem_defaults() -> None:
    spec = spec_from_text(_model("{type: tiered}", ["{channels: 64, blocks: [{type: basic}]}"], size=32))
    assert list(spec.stem.channels) == [24, 32, 64] and spec.stem.stride == 2 and spec.stem.pool == "none"
    plan = plan_model(spec)
    assert plan.stem.out_shape == (64, 16, 16)
    # 3x3 convs without bias + BN (weight and bias) per layer.
    assert plan.stem.params == sum(ci * co * 9 + 2 * co for ci, co in [(3, 24), (24, 32), (32, 64)])


# ---- published parameter counts (meta build: nothing allocated) -----------------------------------------


def _resnet(depths: list[int]) -> str:
    stages = [
        f"{{channels: {c}, stride: {s}, blocks: [{{type: basic, repeat: {d}}}]}}"
        for c, s, d in zip([64, 128, 256, 512], [1, 2, 2, 2], depths, strict=True)
    ]
    stem = "{type: conv, channels: 64, kernel_size: 7, stride: 2, pool: max}"
    return _model(stem, stages, size=224, classes=1000)


def _mobile(rows: list[tuple[int, int, int, int, int]], act: str, se: float) -> str:
    stages = [
        f"{{channels: {c}, stride: {s}, blocks: [{{type: mbconv, repeat: {n}, expand_ratio: {t}, "
        f"kernel_size: {k}, se_ratio: {se}, act: {act}}}]}}"
        for t, c, n, s, k in rows
    ]
    text = _model(f"{{type: conv, channels: 32, kernel_size: 3, stride: 2, act: {act}}}", stages, 224, 1000)
    return text.replace("num_classes: 1000}", f"num_classes: 1000, final_channels: 1280, act: {act}}}")


# (expand ratio, channels, repeats, stride, kernel)
MOBILENET_V2 = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 32, 3, 2, 3), (6, 64, 4, 2, 3), (6, 96, 3, 1, 3)]
MOBILENET_V2 += [(6, 160, 3, 2, 3), (6, 320, 1, 1, 3)]
EFFICIENTNET_B0 = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5)]
EFFICIENTNET_B0 += [(6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]

PUBLISHED = {
    # name: (spec text, parameters (torchvision), multiply-adds at 224 px (papers), final map side)
    "resnet18": (_resnet([2, 2, 2, 2]), 11_689_512, 1.8e9, 7),
    "resnet34": (_resnet([3, 4, 6, 3]), 21_797_672, 3.6e9, 7),
    # MobileNetV2 uses ReLU6; the activation has no parameters, ReLU stands in for it here.
    "mobilenet_v2": (_mobile(MOBILENET_V2, "relu", 0), 3_504_872, 300e6, 7),
    "efficientnet_b0": (_mobile(EFFICIENTNET_B0, "silu", 0.25), 5_288_548, 390e6, 7),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_parameter_counts(name: str) -> None:
    text, params, macs, side = PUBLISHED[name]
    spec = spec_from_text(text)
    plan = plan_model(spec)
    assert plan.params == params
    assert plan.stages[-1].out_shape[1:] == (side, side)
    got = measure(build_model(spec, device="meta"), plan.input)
    assert got.params == params and got.flops == plan.flops
    assert math.isclose(plan.flops / 2, macs, rel_tol=0.06)


def test_torch_export() -> None:
    spec = spec_from_text(CASES["mixed_all"])
    torch.manual_seed(7)
    model = build_model(spec).eval()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))
