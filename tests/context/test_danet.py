"""Dual attention block against Fu et al. 2019 (PAM eq. 1-2, CAM eq. 3-4 and the authors' CAM logits), written per
position and per channel in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.compiler.count import measure
from archdsl.errors import ShapeError
from archdsl.nn.danet import DANET_BRANCHES, DANET_CHANNEL_LOGITS, DualAttention
from archdsl.spec.load import spec_from_text
from tests.context.common import (
    SHAPES,
    assert_batch_independent,
    assert_exports_and_runs_channels_last,
    check,
    conv1x1,
    spec_text,
)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """``exp(l_j) / sum_j' exp(l_j')`` along the last axis (shifted by the maximum: the same ratio, no overflow)."""
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def _pam(x: torch.Tensor, m: DualAttention) -> torch.Tensor:
    """P_i = sum_j softmax_j(q_i . k_j) v_j, one output position i at a time."""
    assert m.position is not None
    b, c, h, w = x.shape
    q = conv1x1(x, m.position.query).flatten(2)  # (B, C', N)
    k = conv1x1(x, m.position.key).flatten(2)
    v = conv1x1(x, m.position.value).flatten(2)  # (B, C, N)
    out = torch.zeros(b, c, h * w, dtype=x.dtype)
    for i in range(h * w):
        s = _softmax((q[:, :, i : i + 1] * k).sum(1))  # (B, N): s_ij over the keys j
        out[:, :, i] = (s[:, None, :] * v).sum(2)
    return out.reshape(b, c, h, w)


def _cam(x: torch.Tensor, logits: str) -> torch.Tensor:
    """A_c = sum_d softmax_d(l_cd) x_d with e_cd = x_c . x_d, one output channel c at a time."""
    b, c, h, w = x.shape
    f = x.flatten(2)  # (B, C, N)
    out = torch.zeros_like(f)
    for ch in range(c):
        e = (f[:, ch : ch + 1, :] * f).sum(2)  # (B, C): e_cd for every d
        lcd = e.amax(1, keepdim=True) - e if logits == "max_minus_energy" else e
        a = _softmax(lcd)
        out[:, ch, :] = (a[:, :, None] * f).sum(1)
    return out.reshape(b, c, h, w)


def _reference(x: torch.Tensor, m: DualAttention, logits: str) -> torch.Tensor:
    out = x.clone()
    if m.position is not None:
        out = out + m.position.gamma * _pam(x, m)
    if m.channel is not None:
        out = out + m.channel.gamma * _cam(x, logits)
    return out


def _module(c: int, inner: int, branches: str, logits: str) -> DualAttention:
    """Float64, eval, with non-zero gammas so that both attention terms count."""
    torch.manual_seed(0)
    m = DualAttention(c, inner, branches, logits).double().eval()
    with torch.no_grad():
        if m.position is not None:
            m.position.gamma.fill_(0.7)
        if m.channel is not None:
            m.channel.gamma.fill_(-0.45)
    return m


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("branches", DANET_BRANCHES)
@pytest.mark.parametrize("logits", DANET_CHANNEL_LOGITS)
@pytest.mark.parametrize("reduction", [1, 8])
def test_danet_matches_the_paper(shape: tuple[int, int, int, int], branches: str, logits: str, reduction: int) -> None:
    m = _module(shape[1], max(1, shape[1] // reduction), branches, logits)
    x = torch.randn(*shape, dtype=torch.float64) * 0.5
    check(m, _reference(x, m, logits), x)


def test_authors_channel_logits_are_the_negated_energy() -> None:
    """``softmax(max(e) - e) = softmax(-e)``: the authors' CAM weights the least similar channels most; eq. 3 the
    most similar (here the channel itself, whose energy ||x_c||^2 is the largest)."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    f = x.flatten(2)
    e = f @ f.transpose(1, 2)
    code = _module(6, 1, "channel", "max_minus_energy")
    paper = _module(6, 1, "channel", "energy")
    with torch.no_grad():
        got_code = (code(x) - x) / code.channel.gamma  # type: ignore[union-attr]
        got_paper = (paper(x) - x) / paper.channel.gamma  # type: ignore[union-attr]
    torch.testing.assert_close(got_code, ((-e).softmax(-1) @ f).reshape(x.shape))
    torch.testing.assert_close(got_paper, (e.softmax(-1) @ f).reshape(x.shape))
    assert (e.softmax(-1).argmax(-1) == torch.arange(6)).all()  # eq. 3: mostly itself


def test_gamma_starts_at_zero_so_the_block_starts_as_identity() -> None:
    for branches in DANET_BRANCHES:
        m = DualAttention(16, 2, branches, "max_minus_energy").eval()
        gammas = [p for n, p in m.named_parameters() if n.endswith("gamma")]
        assert gammas and all(g.shape == (1,) and g.item() == 0.0 for g in gammas)
        x = torch.randn(2, 16, 5, 3)
        with torch.no_grad():
            torch.testing.assert_close(m(x), x, rtol=0, atol=0)


def test_every_constructor_argument_reaches_the_module() -> None:
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)

    def shapes(m: DualAttention) -> dict[str, tuple[int, ...]]:
        return {n: tuple(p.shape) for n, p in m.named_parameters()}

    base = _module(8, 2, "both", "max_minus_energy")
    assert shapes(base) == {
        "position.query.weight": (2, 8, 1, 1),
        "position.query.bias": (2,),
        "position.key.weight": (2, 8, 1, 1),
        "position.key.bias": (2,),
        "position.value.weight": (8, 8, 1, 1),
        "position.value.bias": (8,),
        "position.gamma": (1,),
        "channel.gamma": (1,),
    }
    assert shapes(_module(12, 2, "both", "max_minus_energy"))["position.value.weight"] == (12, 12, 1, 1)  # channels
    assert shapes(_module(8, 4, "both", "max_minus_energy"))["position.query.weight"] == (4, 8, 1, 1)  # inner
    assert set(shapes(_module(8, 2, "position", "max_minus_energy"))) == set(shapes(base)) - {"channel.gamma"}
    assert set(shapes(_module(8, 2, "channel", "max_minus_energy"))) == {"channel.gamma"}  # branches
    with torch.no_grad():
        y = base(x)
        for other in (
            _module(8, 2, "position", "max_minus_energy"),
            _module(8, 2, "channel", "max_minus_energy"),
            _module(8, 2, "both", "energy"),
        ):
            assert not torch.allclose(other(x), y)  # branches, channel_logits
    for bad in (("all", "energy"), ("both", "softmax")):
        with pytest.raises(ValueError, match="must be one of"):
            DualAttention(8, 2, *bad)


def test_samples_of_a_batch_do_not_mix() -> None:
    """Every softmax runs over one sample's keys or channels (a softmax without ``dim`` would mix the batch)."""
    m = _module(8, 2, "both", "max_minus_energy")
    assert_batch_independent(m, (3, 8, 4, 5))


@pytest.mark.parametrize(
    "block",
    [
        "{type: danet}",
        "{type: danet, reduction: 3}",
        "{type: danet, branches: position, reduction: 2}",
        "{type: danet, branches: channel, channel_logits: energy}",
    ],
)
def test_spec_fields_reach_the_module_and_counts_match(block: str) -> None:
    spec = spec_from_text(spec_text(block, size=12, name="da"))
    plan = archdsl.plan_model(spec)
    (node,) = [n for n in plan.nodes() if n.type == "danet"]
    block_spec = spec.stages[0].blocks[1]
    kw = node.recipe.kwargs
    assert kw["inner"] == 24 // block_spec.reduction  # type: ignore[union-attr]
    assert (kw["branches"], kw["channel_logits"]) == (block_spec.branches, block_spec.channel_logits)  # type: ignore[union-attr]
    model = archdsl.build_model(spec, device="meta")
    built = model.stages[0][1]  # type: ignore[index]
    assert isinstance(built, DualAttention)
    assert (built.position is not None) == (kw["branches"] != "channel")
    assert (built.channel is not None) == (kw["branches"] != "position")
    if built.position is not None:
        assert built.position.query.out_channels == kw["inner"]
    if built.channel is not None:
        assert built.channel.max_minus_energy == (kw["channel_logits"] == "max_minus_energy")
    assert sum(p.numel() for p in built.parameters()) == node.params
    got = measure(model, plan.input)
    assert got.params == plan.params and abs(got.flops - plan.flops) <= 0.02 * got.flops


def test_a_reduction_that_leaves_no_channels_is_located() -> None:
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(spec_text("{type: danet, reduction: 32}", name="da"), "da.yaml"))
    (problem,) = err.value.problems
    assert str(problem).startswith("da.yaml:")
    assert "stages.0.blocks.1.reduction: reduction=32 leaves no channels of 24" in str(problem), str(problem)


def test_a_stride_is_refused() -> None:
    text = spec_text("{type: danet}", name="da").replace(
        "{channels: 24, blocks: [{type: bottleneck, width: 8}, ", "{channels: 16, stride: 2, blocks: ["
    )
    with pytest.raises(ShapeError, match="cannot apply the stage's stride 2"):
        archdsl.plan_model(spec_from_text(text, "da.yaml"))


def test_channels_last_and_torch_export_with_nonzero_gammas() -> None:
    """The contract tests build the block with zero gammas, where the attention terms vanish; here they count."""
    m = _module(8, 2, "both", "max_minus_energy").float()
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        expected = m(x)
        assert not torch.allclose(expected, x)
    assert_exports_and_runs_channels_last(m, (2, 8, 5, 7))
