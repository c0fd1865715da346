"""Behaviour that mutation testing (``python -m mutmut run``, see tests/MUTANTS.md) found no test pinning down.

Each test names the real behaviour it fixes: numerics against float64 references written from the module
docstrings, parameter and FLOP counts against the built module or ``FlopCounterMode``, plan trees and located
error messages with their exact path and text.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archdsl import ShapeError, build_model, plan_model, spec_from_text
from archdsl.compiler.instantiate import instantiate
from archdsl.kinds import BLOCKS, MIXERS, load_kinds
from archdsl.mixers.global_attention import GlobalAttentionSpec
from archdsl.mixers.halo import HaloMixerSpec
from archdsl.nn.act import make_act
from archdsl.nn.backbone import Backbone
from archdsl.nn.bottleneck import Bottleneck
from archdsl.nn.classifier import ClassifierHead
from archdsl.nn.conv_bn import ConvBN
from archdsl.nn.conv_stem import ConvStem
from archdsl.nn.drop_path import DropPath
from archdsl.nn.halo import HaloAttention
from archdsl.nn.outlook import window_index
from archdsl.nn.patch_embed import PatchEmbedStem
from archdsl.nn.relpos import RelativePosition2d, relpos_offsets
from archdsl.plan import cost
from archdsl.plan.recipe import Recipe
from archdsl.plan.rules import require_divisible
from archdsl.plan.shapes import Ctx
from tests.references import bn_ref, conv_bn_ref, conv_ref

load_kinds()


def _model(stages: str, stem: str = "{type: conv, channels: 16}", size: int = 16) -> str:
    return (
        f"name: mutants\ninput: {{channels: 3, size: {size}}}\nstem: {stem}\nstages: {stages}\n"
        "head: {type: classifier, num_classes: 4}\n"
    )


def _flops(module: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(x)
    return int(counter.get_total_flops())


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shape_problem(fn: object, *args: object) -> tuple[str, str]:
    """(path, message) of the one problem of the ShapeError that ``fn(*args)`` raises."""
    with pytest.raises(ShapeError) as err:
        fn(*args)  # type: ignore[operator]
    (problem,) = err.value.problems
    return problem.path, problem.message


# ---- float64 references -------------------------------------------------------------------------------


def _randomize_bn(model: nn.Module) -> None:
    """Random affine parameters and running statistics so that unit or zero scales hide nothing."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)


# ---- modules ----------------------------------------------------------------------------------------------


def test_conv_bn_defaults_to_a_unit_scale_batchnorm() -> None:
    """A fresh ConvBN (no zero_init) is conv -> BN with scale 1, shift 0: eval output = conv(x) / sqrt(1 + eps)."""
    torch.manual_seed(10)
    m = ConvBN(3, 4, 3, 1, act=None).double().eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    ref = conv_ref(x, m[0]) / (1.0 + m[1].eps) ** 0.5
    torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)


def test_conv_stem_is_conv_bn_act_then_3x3_max_pool() -> None:
    """ConvStem = conv k/s -> BN -> ReLU -> max_pool2d(3, 2, 1), the ResNet stem arithmetic (odd map: 7 -> 4)."""
    torch.manual_seed(11)
    stem = ConvStem(3, 6, 3, 2, pool=True, act="relu").double().eval()
    _randomize_bn(stem)
    x = torch.randn(2, 3, 13, 13, dtype=torch.float64)
    ref = F.max_pool2d(conv_bn_ref(x, stem[0], act=True), 3, 2, 1)
    assert ref.shape == (2, 6, 4, 4)
    torch.testing.assert_close(stem(x), ref, rtol=1e-12, atol=1e-12)


def test_patch_embed_stem_has_relu_after_each_of_its_three_conv_bn() -> None:
    """VOLO stem: [conv 7x7/2, 3x3, 3x3] each -> BN -> ReLU, then a (p/2)x(p/2) conv with bias."""
    torch.manual_seed(12)
    stem = PatchEmbedStem(3, 5, 4, 4).double().eval()
    _randomize_bn(stem)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    y = x
    for layer in list(stem)[:3]:
        y = conv_bn_ref(y, layer, act=True)
    ref = conv_ref(y, stem[3])
    assert ref.shape == (2, 5, 4, 4)
    torch.testing.assert_close(stem(x), ref, rtol=1e-12, atol=1e-12)


def test_classifier_head_final_conv_has_its_activation() -> None:
    """ClassifierHead with final_channels: 1x1 conv -> BN -> ReLU -> mean over H, W -> fc."""
    torch.manual_seed(13)
    head = ClassifierHead(6, 3, 8, 0.0, "relu").double().eval()
    _randomize_bn(head)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    z = conv_bn_ref(x, head.final, act=True).mean(dim=(2, 3))
    torch.testing.assert_close(head(x), z @ head.fc.weight.T + head.fc.bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(16, 16, 1), (8, 16, 2)])
def test_bottleneck_matches_reference(c_in: int, c_out: int, stride: int) -> None:
    """Bottleneck: act(shortcut(x) + BN(1x1(act(BN(mixer(act(BN(1x1 x))))))); zero_init_last starts it as
    act(shortcut(x))."""
    torch.manual_seed(14)
    mixer = nn.Conv2d(4, 4, 3, stride, 1, bias=False)
    block = Bottleneck(c_in, c_out, 4, mixer, 4, stride, "relu", zero_init_last=True, drop_path=0.0)
    block = block.double().eval()
    x = torch.randn(2, c_in, 8, 8, dtype=torch.float64)
    projected = stride != 1 or c_in != c_out
    short = conv_bn_ref(x, block.shortcut, act=False) if projected else x
    torch.testing.assert_close(block(x), torch.relu(short), rtol=1e-12, atol=1e-12)
    _randomize_bn(block)
    short = conv_bn_ref(x, block.shortcut, act=False) if projected else x
    y = conv_bn_ref(x, block.reduce, act=True)
    y = torch.relu(bn_ref(conv_ref(y, mixer), block.mixer_norm))
    y = conv_bn_ref(y, block.expand, act=False)
    torch.testing.assert_close(block(x), torch.relu(short + y), rtol=1e-12, atol=1e-12)


def test_gelu_activation_can_be_made() -> None:
    """make_act('gelu') builds a GELU (torch's has no in-place form) computing the exact erf GELU."""
    act = make_act("gelu")
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(act(x), 0.5 * x * (1 + torch.erf(x / 2**0.5)), rtol=1e-12, atol=1e-12)


def test_drop_path_zero_is_a_no_op_that_draws_no_random_numbers() -> None:
    """DropPath(0.0) in training returns its input itself and leaves the global RNG untouched."""
    m = DropPath(0.0).train()
    x = torch.randn(4, 3)
    state = torch.get_rng_state()
    y = m(x)
    assert y is x
    assert torch.equal(torch.get_rng_state(), state)


def test_backbone_refuses_feature_lists_of_different_lengths() -> None:
    """feature_channels and feature_reductions are zipped strictly: a length mismatch is an error, not a
    silently shorter feature_info."""
    with pytest.raises(ValueError):
        Backbone(nn.Identity(), [nn.Identity(), nn.Identity()], nn.Identity(), [8, 16], [2])


def test_outlook_window_index_is_f_unfold_of_the_padded_map() -> None:
    """window_index gives F.unfold's (k², L) positions in the map padded by p, and (Hp, Wp) = (H+2p, W+2p)."""
    h, w, k, p, s = 5, 7, 3, 1, 2
    index, hp, wp = window_index(h, w, k, p, s, torch.device("cpu"))
    assert (hp, wp) == (h + 2 * p, w + 2 * p)
    positions = torch.arange(hp * wp, dtype=torch.float64).reshape(1, 1, hp, wp)
    expected = F.unfold(positions, k, stride=s)[0].long()  # (k², L) on the already padded map
    assert torch.equal(index, expected)


def test_relpos_offsets_accept_exactly_the_table_rows() -> None:
    """Offsets of ±(L-1) map to rows 0 and 2L-2; one step further is outside the (2L-1)-row table."""
    assert relpos_offsets([0, 1], [0, 1], 2).tolist() == [[1, 2], [0, 1]]
    for queries, keys in (([0], [2]), ([2], [0])):
        with pytest.raises(ValueError, match="relative offsets must lie within ±1"):
            relpos_offsets(queries, keys, 2)


def test_relpos_offsets_are_int64_even_for_an_empty_grid() -> None:
    """The offsets are index tensors (int64) whatever the grid, an empty key grid included."""
    offsets = relpos_offsets([0, 1], [], 2)
    assert offsets.dtype == torch.int64 and offsets.shape == (2, 0)


def test_derived_index_and_mask_buffers_stay_out_of_the_state_dict() -> None:
    """Checkpoints hold only learned tensors: the relative-position indices and the halo padding mask are
    recomputed at construction (non-persistent buffers)."""
    halo = HaloAttention(4, 4, 8, 8, 4, 1, 2, 1)
    assert set(halo.state_dict()) == {"q.weight", "kv.weight", "relpos.table_h", "relpos.table_w"}
    rel = RelativePosition2d(2, (3, 3), range(3), range(3), range(3), range(3))
    assert set(rel.state_dict()) == {"table_h", "table_w"}


# ---- plan: costs ------------------------------------------------------------------------------------------


def test_conv_cost_on_a_non_square_map_matches_flop_counter() -> None:
    """cost.conv counts 2 x weights x Ho x Wo, as FlopCounterMode does, also for Ho != Wo."""
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert cost.conv(3, 8, 3, (5, 7)) == cost.Cost(8 * 3 * 9, _flops(conv, torch.zeros(1, 3, 5, 7)))


def test_matmul_cost_defaults_to_one_product() -> None:
    """cost.matmul(m, k, n) without a batch is one (m x k) @ (k x n) product: 2*m*k*n FLOPs."""
    a, b = torch.zeros(3, 4), torch.zeros(4, 5)
    with FlopCounterMode(display=False) as counter:
        torch.mm(a, b)
    assert cost.matmul(3, 4, 5) == cost.Cost(0, counter.get_total_flops()) == cost.Cost(0, 120)


def test_global_attention_cost_on_a_non_square_map_is_exact() -> None:
    """The planned global-attention node (qkv conv, relative-position logits over Nk_h + Nk_w keys, two
    products) has exactly the built module's parameters and FLOPs on a 6x4 map."""
    spec = GlobalAttentionSpec(type="global_attention", num_heads=2)
    node = MIXERS.get("global_attention").plan(spec, Ctx((8, 6, 4), "m"))
    module = instantiate(node.recipe)
    assert node.params == _params(module)
    assert node.flops == _flops(module, torch.zeros(1, 8, 6, 4))


def test_qkv_bias_is_planned_and_built() -> None:
    """qkv_bias adds the value bias (C) to an outlooker and the qkv bias (3C) to a transformer block, in the
    plan and in the built model alike."""

    def model(bias: str) -> str:
        blocks = (
            f"[{{type: outlooker, num_heads: 2, qkv_bias: {bias}}}, "
            f"{{type: transformer, num_heads: 2, qkv_bias: {bias}}}]"
        )
        return _model(f"[{{channels: 16, blocks: {blocks}}}]")

    counts = {}
    for bias in ("false", "true"):
        spec = spec_from_text(model(bias))
        counts[bias] = (plan_model(spec).params, _params(build_model(spec)))
    assert counts["true"][0] == counts["true"][1]
    assert counts["true"][0] - counts["false"][0] == 16 + 3 * 16


def test_outlooker_plan_on_a_non_square_map() -> None:
    """On a 16x12 map the outlooker rule reports both window counts per side, and its FLOPs count
    ceil(16/2) x ceil(12/2) attention windows exactly as the built block does."""
    spec = BLOCKS.get("outlooker").spec(type="outlooker", num_heads=2, padding=0)
    path, message = _shape_problem(BLOCKS.get("outlooker").plan, spec, Ctx((16, 16, 12), "b"))
    assert path == "b.padding"
    assert message.startswith(
        "kernel_size=3, padding=0, attn_stride=2 unfold the 16x12 map into 7x5 windows but the pooled "
        "attention map has 8x6 (ceil(16/2) x ceil(12/2))"
    )
    spec = BLOCKS.get("outlooker").spec(type="outlooker", num_heads=2)
    node = BLOCKS.get("outlooker").plan(spec, Ctx((16, 16, 12), "b"))
    module = instantiate(node.recipe)
    assert node.params == _params(module)
    assert node.flops == _flops(module, torch.zeros(1, 16, 16, 12))


# ---- plan: shape rules and messages ------------------------------------------------------------------------


def test_global_attention_refuses_a_map_with_one_odd_side() -> None:
    """Stride 2 needs both sides even: 16x15 is refused, and a context without an input size adds no
    location suffix to the message."""
    spec = GlobalAttentionSpec(type="global_attention", num_heads=2)
    path, message = _shape_problem(MIXERS.get("global_attention").plan, spec, Ctx((8, 16, 15), "m", stride=2))
    assert (path, message) == ("m", "feature map 16x15 is not divisible by the stride 2")


def test_halo_value_width_must_be_a_positive_integer() -> None:
    """value_ratio * w must be an integer (within 1e-9) of at least 1: 1e-9 (w = 1) is refused."""
    spec = HaloMixerSpec(type="halo", block_size=4, halo_size=1, num_heads=1, value_ratio=1e-9)
    path, message = _shape_problem(MIXERS.get("halo").plan, spec, Ctx((1, 8, 8), "m"))
    assert (path, message) == (
        "m.value_ratio",
        "value width value_ratio*w must be a positive integer, got 1e-09*1=1e-09",
    )


def test_require_divisible_by_zero_is_a_shape_error() -> None:
    """A zero divisor is reported as a located ShapeError, not a ZeroDivisionError."""
    path, message = _shape_problem(require_divisible, 8, 0, "x.groups", "width", "groups")
    assert (path, message) == ("x.groups", "width=8 must be divisible by groups=0")


def test_token_block_refuses_a_one_channel_stage() -> None:
    """A transformer block on 16 channels in a stage that declares 1 is blamed on the block."""
    text = _model("[{channels: 1, blocks: [{type: transformer, num_heads: 2}]}]")
    path, message = _shape_problem(plan_model, spec_from_text(text))
    assert path == "stages.0.blocks.0"
    assert message.startswith("a transformer block keeps its 16 input channels but the stage declares 1; ")


def test_token_block_accepts_a_one_unit_mlp() -> None:
    """mlp_ratio = 1/16 at 16 channels gives a 1-unit MLP, which is allowed (only 0 units is empty)."""
    spec = spec_from_text(_model("[{channels: 16, blocks: [{type: transformer, num_heads: 2, mlp_ratio: 0.0625}]}]"))
    plan = plan_model(spec)
    block = build_model(spec).stages[0][0]
    assert block.mlp.fc1.out_features == 1 and _params(build_model(spec)) == plan.params


def test_mbconv_accepts_an_expanded_width_of_one() -> None:
    """round(16 x 0.0625) = 1 expanded channel is positive, so the block plans and builds."""
    spec = spec_from_text(_model("[{channels: 16, blocks: [{type: mbconv, expand_ratio: 0.0625}]}]"))
    plan = plan_model(spec)
    block = build_model(spec).stages[0][0]
    assert block.depthwise[0].out_channels == 1 and _params(build_model(spec)) == plan.params


def test_mbconv_default_se_width_is_floor_of_input_times_ratio() -> None:
    """EfficientNet SE width floor(C_in x se_ratio), at least 1: 4 x 0.25 -> 1 and 2 x 0.25 -> 1."""
    for c_in in (4, 2):
        text = _model(f"[{{channels: {c_in}, blocks: [{{type: mbconv}}]}}]", stem=f"{{type: conv, channels: {c_in}}}")
        block = build_model(spec_from_text(text)).stages[0][0]
        assert block.se.reduce.out_channels == 1, c_in


# ---- plan: the tree and its data -----------------------------------------------------------------------------

TREE = _model(
    "[{channels: 16, blocks: [{type: basic, repeat: 2, attention: se}]},"
    " {channels: 32, stride: 2, blocks: [{type: bottleneck, width: 8, mixer: {type: conv}},"
    " {type: bottleneck, width: 8, mixer: {type: global_attention, num_heads: 2}}]},"
    " {channels: 32, blocks: [{type: mbconv}]},"
    " {channels: 32, blocks: [{type: outlooker, num_heads: 2}]}]"
)


def test_plan_tree_labels_roles_and_types() -> None:
    """Every node of a mixed model has its label (with the repeat index), role and type; the basic block's
    attached SE and the MBConv's default SE are child nodes at ``<block>.attention``."""
    plan = plan_model(spec_from_text(TREE))
    assert [(n.label, n.role, n.type) for n in plan.nodes()] == [
        ("stem", "stem", "conv"),
        ("stages.0.blocks.0", "block", "basic"),
        ("stages.0.blocks.0.attention", "attention", "se"),
        ("stages.0.blocks.0#1", "block", "basic"),
        ("stages.0.blocks.0.attention#1", "attention", "se"),
        ("stages.1.blocks.0", "block", "bottleneck"),
        ("stages.1.blocks.0.mixer", "mixer", "conv"),
        ("stages.1.blocks.1", "block", "bottleneck"),
        ("stages.1.blocks.1.mixer", "mixer", "global_attention"),
        ("stages.2.blocks.0", "block", "mbconv"),
        ("stages.2.blocks.0.attention", "attention", "se"),
        ("stages.3.blocks.0", "block", "outlooker"),
        ("head", "head", "classifier"),
    ]
    assert _params(build_model(spec_from_text(TREE))) == plan.params


def test_plan_data_carries_the_feature_info() -> None:
    """to_data() has timm's feature_info: channels, stride from the 16 px input and module of each stage."""
    data = plan_model(spec_from_text(TREE)).to_data()
    assert data["feature_info"] == [
        {"num_chs": 16, "reduction": 1, "module": "stages.0"},
        {"num_chs": 32, "reduction": 2, "module": "stages.1"},
        {"num_chs": 32, "reduction": 2, "module": "stages.2"},
        {"num_chs": 32, "reduction": 2, "module": "stages.3"},
    ]


def test_ctx_child_applies_the_changes() -> None:
    """Ctx.child extends the path, sets the input shape and applies keyword changes, keeping the rest."""
    ctx = Ctx((16, 8, 8), "stages.0.blocks.0", out_channels=32, stride=2, repeat=1, input_size=32, in_stride=4)
    child = ctx.child("attention", (32, 4, 4), out_channels=32, stride=1)
    assert child == Ctx((32, 4, 4), "stages.0.blocks.0.attention", 32, 1, 1, 32, 4)


def test_recipe_stores_plain_lists_and_its_own_copy_of_the_arguments() -> None:
    """Tuples become lists (so a recipe equals its JSON round trip) and later edits of the caller's dict do
    not reach the recipe."""
    kwargs: dict[str, object] = {"in_channels": 3, "out_channels": 4, "kernel_size": (3, 3)}
    recipe = Recipe("torch.nn.Conv2d", kwargs)
    kwargs["out_channels"] = 99
    assert recipe.kwargs == {"in_channels": 3, "out_channels": 4, "kernel_size": [3, 3]}
    assert Recipe.from_data(recipe.to_data()) == recipe
