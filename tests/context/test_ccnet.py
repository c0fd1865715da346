"""Recurrent criss-cross attention against Huang et al. 2019 (eq. 1-2, RCCA with shared weights), written per
position over its H + W - 1 criss-cross keys in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.compiler.count import measure
from archdsl.errors import ShapeError
from archdsl.nn.ccnet import CrissCrossAttention, RecurrentCrissCross
from archdsl.spec.load import spec_from_text
from tests.context.common import (
    SHAPES,
    assert_batch_independent,
    assert_exports_and_runs_channels_last,
    check,
    conv1x1,
    spec_text,
)


def _criss_cross(h: int, w: int, i: int, j: int) -> list[tuple[int, int]]:
    """The H + W - 1 positions of the column and the row through (i, j), (i, j) itself once."""
    return [(r, j) for r in range(h) if r != i] + [(i, c) for c in range(w)]


def _cca(x: torch.Tensor, m: CrissCrossAttention) -> torch.Tensor:
    """x'_u = gamma sum_{p in criss-cross(u)} softmax_p(q_u . k_p) v_p + x_u, one position u at a time."""
    b, c, h, w = x.shape
    q, k, v = conv1x1(x, m.query), conv1x1(x, m.key), conv1x1(x, m.value)
    agg = torch.zeros(b, c, h, w, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            keys = _criss_cross(h, w, i, j)
            assert len(keys) == h + w - 1 and len(set(keys)) == h + w - 1
            d = torch.stack([(q[:, :, i, j] * k[:, :, r, s]).sum(1) for r, s in keys], dim=1)  # (B, H+W-1)
            e = torch.exp(d - d.amax(1, keepdim=True))  # shifted by the maximum: the same ratio, no overflow
            a = e / e.sum(1, keepdim=True)  # softmax over the whole criss-cross, column and row together
            agg[:, :, i, j] = sum(a[:, n, None] * v[:, :, r, s] for n, (r, s) in enumerate(keys))
    return x + m.gamma * agg


def _reference(x: torch.Tensor, m: RecurrentCrissCross) -> torch.Tensor:
    for _ in range(m.recurrence):  # the same weights at every step
        x = _cca(x, m.attention)
    return x


def _module(c: int, inner: int, recurrence: int, gamma: float = 0.8) -> RecurrentCrissCross:
    torch.manual_seed(0)
    m = RecurrentCrissCross(c, inner, recurrence).double().eval()
    with torch.no_grad():
        m.attention.gamma.fill_(gamma)
    return m


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("recurrence", [1, 2, 3])
@pytest.mark.parametrize("reduction", [1, 8])
def test_ccnet_matches_the_paper(shape: tuple[int, int, int, int], recurrence: int, reduction: int) -> None:
    m = _module(shape[1], max(1, shape[1] // reduction), recurrence)
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 5), (6, 1)])
def test_degenerate_maps(h: int, w: int) -> None:
    """A single row or column (the column then holds only the masked position itself): still finite and exact."""
    m = _module(8, 2, 2)
    x = torch.randn(2, 8, h, w, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_the_position_itself_is_counted_once() -> None:
    """With queries and keys that make every logit equal, each of the H + W - 1 criss-cross positions gets weight
    1 / (H + W - 1); counting the position twice (column and row) would give it 2 / (H + W)."""
    h, w = 4, 6
    m = _module(3, 1, 1, gamma=1.0)
    with torch.no_grad():
        for conv in (m.attention.query, m.attention.key):  # q = k = 1 everywhere: every logit is 1
            assert conv.bias is not None
            conv.weight.zero_()
            conv.bias.fill_(1.0)
        assert m.attention.value.bias is not None
        m.attention.value.weight.copy_(torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1))  # v = x
        m.attention.value.bias.zero_()
        x = torch.zeros(1, 3, h, w, dtype=torch.float64)
        x[0, 0, 1, 2] = 1.0  # a value of 1 in channel 0 at one position
        y = m(x) - x
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[1, :] = 1 / (h + w - 1)  # its row sees it
    expected[:, 2] = 1 / (h + w - 1)  # its column sees it (itself once)
    torch.testing.assert_close(y[0, 0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("h", "w"), [(5, 7), (6, 4)])
def test_receptive_field_one_step_is_the_criss_cross_two_steps_the_whole_map(h: int, w: int) -> None:
    """The gradient of one output position: R = 1 reaches exactly its row and column, R = 2 every position."""
    u = (h - 2, 1)
    for recurrence in (1, 2):
        m = _module(8, 2, recurrence)
        x = torch.randn(2, 8, h, w, dtype=torch.float64, requires_grad=True)
        m(x)[0, :, u[0], u[1]].sum().backward()
        assert x.grad is not None
        reached = x.grad[0].abs().sum(0) > 0  # (H, W)
        assert not x.grad[1].any()  # the other sample is untouched
        if recurrence == 1:
            expected = torch.zeros(h, w, dtype=torch.bool)
            expected[u[0], :] = True
            expected[:, u[1]] = True
            assert torch.equal(reached, expected)
        else:
            assert reached.all()


def test_gamma_starts_at_zero_so_the_block_starts_as_identity() -> None:
    m = RecurrentCrissCross(16, 2, 2).eval()
    assert m.attention.gamma.shape == (1,) and m.attention.gamma.item() == 0.0
    x = torch.randn(2, 16, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x, rtol=0, atol=0)


def test_every_constructor_argument_reaches_the_module() -> None:
    def shapes(m: RecurrentCrissCross) -> dict[str, tuple[int, ...]]:
        return {n: tuple(p.shape) for n, p in m.named_parameters()}

    base = _module(8, 2, 2)
    assert shapes(base) == {
        "attention.query.weight": (2, 8, 1, 1),
        "attention.query.bias": (2,),
        "attention.key.weight": (2, 8, 1, 1),
        "attention.key.bias": (2,),
        "attention.value.weight": (8, 8, 1, 1),
        "attention.value.bias": (8,),
        "attention.gamma": (1,),
    }
    assert shapes(_module(12, 2, 2))["attention.value.weight"] == (12, 12, 1, 1)  # channels
    assert shapes(_module(8, 4, 2))["attention.key.weight"] == (4, 8, 1, 1)  # inner
    assert shapes(_module(8, 2, 3)) == shapes(base)  # recurrence shares one set of weights ...
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        once, twice = _module(8, 2, 1)(x), base(x)
        assert not torch.allclose(once, twice)  # ... and applies it again
        torch.testing.assert_close(twice, base.attention(base.attention(x)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="recurrence"):
        RecurrentCrissCross(8, 2, 0)


def test_samples_of_a_batch_do_not_mix() -> None:
    m = _module(8, 2, 2)
    assert_batch_independent(m, (3, 8, 4, 5))


@pytest.mark.parametrize(
    ("block", "inner", "recurrence"),
    [
        ("{type: ccnet}", 3, 2),
        ("{type: ccnet, reduction: 4, recurrence: 1}", 6, 1),
        ("{type: ccnet, recurrence: 3}", 3, 3),
    ],
)
def test_spec_fields_reach_the_module_and_counts_match(block: str, inner: int, recurrence: int) -> None:
    spec = spec_from_text(spec_text(block, size=12, name="cc"))
    plan = archdsl.plan_model(spec)
    (node,) = [n for n in plan.nodes() if n.type == "ccnet"]
    assert node.recipe.kwargs == {"channels": 24, "inner": inner, "recurrence": recurrence}
    model = archdsl.build_model(spec, device="meta")
    built = model.stages[0][1]  # type: ignore[index]
    assert isinstance(built, RecurrentCrissCross)
    assert (built.attention.query.out_channels, built.recurrence) == (inner, recurrence)
    assert sum(p.numel() for p in built.parameters()) == node.params
    got = measure(model, plan.input)
    assert got.params == plan.params and abs(got.flops - plan.flops) <= 0.02 * got.flops


def test_cost_grows_with_h_plus_w_not_with_n_squared() -> None:
    """Per step the attention costs 2 N (H + W) (C' + C) FLOPs: doubling both sides multiplies it by 8, not 16."""

    def attention_flops(size: int) -> int:
        plan = archdsl.plan_model(spec_from_text(spec_text("{type: ccnet, recurrence: 1}", size=size, name="cc")))
        (node,) = [n for n in plan.nodes() if n.type == "ccnet"]
        convs = 2 * (2 * 24 * 3 + 24 * 24) * size * size  # q, k, v 1x1 convs (2 x multiply-adds)
        return node.flops - convs

    assert attention_flops(12) == 2 * 144 * (12 + 12) * (3 + 24)
    assert attention_flops(24) == 8 * attention_flops(12)


def test_a_reduction_that_leaves_no_channels_is_located() -> None:
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(spec_text("{type: ccnet, reduction: 32}", name="cc"), "cc.yaml"))
    (problem,) = err.value.problems
    assert str(problem).startswith("cc.yaml:")
    assert "stages.0.blocks.1.reduction: reduction=32 leaves no channels of 24" in str(problem), str(problem)


def test_a_channel_change_is_refused() -> None:
    text = spec_text("{type: ccnet}", name="cc")
    text = text.replace("[{type: bottleneck, width: 8}, {type: ccnet}]", "[{type: ccnet}]")
    with pytest.raises(ShapeError, match="a ccnet block keeps its 16 input channels"):
        archdsl.plan_model(spec_from_text(text, "cc.yaml"))


def test_channels_last_and_torch_export_with_a_nonzero_gamma() -> None:
    """The contract tests build the block with gamma = 0, where the attention term vanishes; here it counts."""
    m = _module(8, 2, 2).float()
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        expected = m(x)
        assert not torch.allclose(expected, x)
    assert_exports_and_runs_channels_last(m, (2, 8, 5, 7))
