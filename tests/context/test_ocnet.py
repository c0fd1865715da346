"""Object context block against Yuan & Wang 2018 (Base-OC, Pyramid-OC, ASP-OC), written per position in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.ocnet import ObjectContext, ObjectContextBlock
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``sum_{taps} W_t x_{i + d t}`` with zeros outside the map (dilation d), plus the bias."""
    d = conv.dilation[0]
    b, _, h, w = x.shape
    xp = torch.zeros(b, x.shape[1], h + 2 * d, w + 2 * d, dtype=x.dtype)
    xp[:, :, d : d + h, d : d + w] = x
    y = torch.zeros(b, conv.out_channels, h, w, dtype=x.dtype)
    for u in range(3):
        for v in range(3):
            patch = xp[:, :, u * d : u * d + h, v * d : v * d + w]
            y = y + torch.einsum("oc,bchw->bohw", conv.weight[:, :, u, v], patch)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1)


def _cbr(x: torch.Tensor, seq: nn.Sequential) -> torch.Tensor:
    conv, bn = seq[0], seq[1]
    y = conv1x1(x, conv) if conv.kernel_size == (1, 1) else _conv3x3(x, conv)
    return torch.relu(bn_eval(y, bn))


def _region_of(size: int, s: int) -> list[int]:
    """Region index of each row (column): ``size // s`` rows each, the last region taking the rest."""
    step = size // s
    return [min(i // step, s - 1) for i in range(size)]


def _object_context(x: torch.Tensor, m: ObjectContext) -> torch.Tensor:
    """c_i = W sum_{j in region(i)} softmax_j(k_i . k_j / sqrt(d)) v_j."""
    b, _, h, w = x.shape
    k = _cbr(x, m.key).flatten(2)  # (B, d, N), query = key
    v = conv1x1(x, m.value).flatten(2)
    rr, rc = _region_of(h, m.regions), _region_of(w, m.regions)
    region = [(rr[i // w], rc[i % w]) for i in range(h * w)]
    d = k.shape[1]
    y = torch.zeros(b, v.shape[1], h * w, dtype=x.dtype)
    for i in range(h * w):
        js = [j for j in range(h * w) if region[j] == region[i]]
        logits = (k[:, :, i : i + 1] * k[:, :, js]).sum(1) / d**0.5  # (B, |region|)
        e = torch.exp(logits - logits.amax(1, keepdim=True))
        a = e / e.sum(1, keepdim=True)
        y[:, :, i] = (a[:, None, :] * v[:, :, js]).sum(2)
    return conv1x1(y.reshape(b, -1, h, w), m.out)


def _reference(x: torch.Tensor, m: ObjectContextBlock) -> torch.Tensor:
    if m.variant == "base":
        return _cbr(torch.cat([_object_context(x, m.contexts[0]), x], 1), m.fuse)
    if m.variant == "pyramid":
        parts = [_cbr(x, m.lift), *[_object_context(x, ctx) for ctx in m.contexts]]
        return _cbr(torch.cat(parts, 1), m.fuse)
    context = _cbr(_object_context(_cbr(x, m.context_in), m.contexts[0]), m.context_out)
    return _cbr(torch.cat([context, *[_cbr(x, br) for br in m.branches]], 1), m.fuse)


def _module(c: int, variant: str, levels: list[int], dilations: list[int]) -> ObjectContextBlock:
    torch.manual_seed(0)
    m = ObjectContextBlock(c, c // 2, variant, levels, dilations, zero_init=False).double()
    randomise_norms(m)
    return m.eval()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", ["base", "pyramid", "asp"])
def test_ocnet_matches_the_paper(shape: tuple[int, int, int, int], variant: str) -> None:
    levels = [s for s in (1, 2, 3, 6) if s <= min(shape[2:])]
    m = _module(shape[1], variant, levels, [1, 2, 4])
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_pyramid_regions_of_an_uneven_map() -> None:
    """13 x 8 into 6 x 6 regions: rows of 2 with a last region of 3, columns of 1 with a last of 3."""
    m = _module(8, "pyramid", [1, 2, 3, 6], [])
    x = torch.randn(2, 8, 13, 8, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_paper_dilations_on_a_small_map() -> None:
    m = _module(8, "asp", [1], [12, 24, 36])
    x = torch.randn(2, 8, 9, 14, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_pyramid_context_stays_in_its_region() -> None:
    """At level 2, changing the input in the top-left region leaves the bottom-right region's context alone."""
    torch.manual_seed(0)
    ctx = ObjectContext(8, 4, 8, 8, 2, zero_init=False).double().eval()
    randomise_norms(ctx)
    ctx.eval()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, :3, :3] += torch.randn(2, 8, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        a, b = ctx(x), ctx(x2)
    assert torch.equal(a[:, :, 3:, 3:], b[:, :, 3:, 3:]) and not torch.allclose(a[:, :, :3, :3], b[:, :, :3, :3])


def test_zero_init_starts_with_an_empty_context() -> None:
    """The context's output conv starts at zero (the authors' code), so Base-OC starts as fuse([0; x])."""
    m = ObjectContextBlock(8, 4, "base", [1], [], zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        expected = m.fuse(torch.cat([torch.zeros_like(x), x], 1))
        torch.testing.assert_close(m(x), expected)


def test_query_shares_the_key_transform() -> None:
    m = ObjectContextBlock(8, 4, "base", [1], [], zero_init=True)
    names = {n for n, _ in m.named_parameters() if n.startswith("contexts.0.")}
    assert names == {
        "contexts.0.key.0.weight",
        "contexts.0.key.0.bias",
        "contexts.0.key.1.weight",
        "contexts.0.key.1.bias",
        "contexts.0.value.weight",
        "contexts.0.value.bias",
        "contexts.0.out.weight",
        "contexts.0.out.bias",
    }


def test_pyramid_level_must_fit_the_map() -> None:
    text = (
        "name: oc\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, stride: 4, blocks: [{type: bottleneck, width: 8}, "
        "{type: ocnet, variant: pyramid, levels: [1, 2, 6]}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "oc.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("oc.yaml:") and "stages.0.blocks.1.levels:" in line, line
    assert "level 6" in line and "4x4" in line, line
