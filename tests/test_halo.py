"""Halo attention (HaloNet, arXiv:2103.12731) against a float64 per-query reference, on the CPU path and on the
CUDA path (run on CPU tensors: what it hands the fused kernel), plus shape rules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from archdsl import ShapeError, plan_model, spec_from_text
from archdsl.kinds import MIXERS
from archdsl.mixers.halo import HaloMixerSpec
from archdsl.nn import relpos
from archdsl.nn.halo import HaloAttention
from archdsl.nn.windows import block_fold, block_windows
from archdsl.plan.shapes import Ctx
from tests.fused import assert_cpu_path_gradients, assert_fused_arguments, record_sdpa


def _reference(m: HaloAttention, x: torch.Tensor) -> torch.Tensor:
    """Halo attention written from the paper's equation, one query pixel at a time.

    y_ij = sum_ab softmax_ab((q_ij·k_ab + q_ij·r_{a-i} + q_ij·r'_{b-j}) / sqrt(d)) v_ab over the keys ab of
    the window that lie inside the map; the query is the full-resolution pixel (s*i, s*j) and its window is
    the (b+2h)^2 square around its b x b block.
    """
    b, h, s, n = m.block, m.halo, m.stride, m.heads
    w = m.q.weight.shape[0]
    dq, dv = m.qk_dim, m.v_dim
    win = b + 2 * h
    wq = m.q.weight[:, :, 0, 0]
    wk = m.kv.weight[:w, :, 0, 0]
    wv = m.kv.weight[w:, :, 0, 0]
    r_h, r_w = m.relpos.table_h, m.relpos.table_w
    bsz, _, height, width = x.shape
    out = torch.zeros(bsz, n * dv, height // s, width // s, dtype=x.dtype)
    for bi in range(bsz):
        for head in range(n):
            qs, vs = slice(head * dq, (head + 1) * dq), slice(head * dv, (head + 1) * dv)
            for oy in range(height // s):
                for ox in range(width // s):
                    qy, qx = s * oy, s * ox
                    q = wq[qs] @ x[bi, :, qy, qx]
                    top, left = (qy // b) * b - h, (qx // b) * b - h
                    logits, values = [], []
                    for ky in range(top, top + win):
                        for kx in range(left, left + win):
                            if not (0 <= ky < height and 0 <= kx < width):
                                continue  # zero padding: no weight at all
                            k = wk[qs] @ x[bi, :, ky, kx]
                            rel = q @ r_h[ky - qy + win - 1] + q @ r_w[kx - qx + win - 1]
                            logits.append((q @ k + rel) / math.sqrt(dq))
                            values.append(wv[vs] @ x[bi, :, ky, kx])
                    p = torch.softmax(torch.stack(logits), dim=0)
                    out[bi, vs, oy, ox] = (p[:, None] * torch.stack(values)).sum(0)
    return out


CASES = [
    # channels, value_channels, height, width, block, halo, heads, stride
    (16, 16, 8, 8, 4, 1, 4, 1),
    (8, 16, 8, 12, 4, 2, 2, 2),
    (8, 12, 4, 6, 2, 3, 2, 1),
    (8, 8, 8, 8, 4, 0, 2, 2),
    (12, 24, 6, 6, 6, 2, 3, 2),
]


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), CASES)
def test_matches_float64_reference(c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int) -> None:
    torch.manual_seed(0)
    m = HaloAttention(c, cv, hh, ww, b, h, n, s).double()
    x = torch.randn(2, c, hh, ww, dtype=torch.float64)
    got = m(x)
    assert got.shape == (2, cv, hh // s, ww // s)
    assert (got - _reference(m, x)).abs().max().item() <= 1e-6


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), CASES)
def test_gradients_match_float64_reference(c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int) -> None:
    """The block windows have their own backward (the overlap-adding fold): input and weight gradients equal
    the per-query reference's autograd gradients."""
    torch.manual_seed(2)
    m = HaloAttention(c, cv, hh, ww, b, h, n, s).double()
    x = torch.randn(2, c, hh, ww, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, cv, hh // s, ww // s, dtype=torch.float64)
    params = [x, *m.parameters()]
    got = torch.autograd.grad(m(x), params, g)
    want = torch.autograd.grad(_reference(m, x), params, g)
    for a, w in zip(got, want, strict=True):
        assert (a - w).abs().max().item() <= 1e-6


def test_compiled_path_equals_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """The padded-unfold windows (the CUDA path and what torch.compile traces) give the CPU block windows' output
    and gradients."""
    torch.manual_seed(3)
    m = HaloAttention(8, 16, 8, 12, 4, 2, 2, 2).double()
    x = torch.randn(2, 8, 8, 12, dtype=torch.float64, requires_grad=True)
    eager = m(x)
    eager_grad = torch.autograd.grad(eager.square().sum(), [x, *m.parameters()])
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced = m(x)
    traced_grad = torch.autograd.grad(traced.square().sum(), [x, *m.parameters()])
    assert torch.allclose(traced, eager, atol=1e-12)
    for a, w in zip(traced_grad, eager_grad, strict=True):
        assert torch.allclose(a, w, atol=1e-10)


@pytest.mark.parametrize(
    ("hh", "ww", "k", "p", "s"), [(8, 12, 8, 2, 4), (6, 6, 10, 2, 6), (3, 5, 3, 1, 2), (9, 9, 5, 0, 2)]
)
def test_block_windows_are_unfold_and_block_fold_is_their_adjoint(hh: int, ww: int, k: int, p: int, s: int) -> None:
    """block_windows() gives F.unfold's values grouped per window; block_fold() is its adjoint; autograd's
    backward of each is the other, and second derivatives pass gradgradcheck."""
    torch.manual_seed(0)
    groups, d = 2, 3
    x = torch.randn(2, groups * d, hh, ww, dtype=torch.float64, requires_grad=True)
    win = block_windows(x, k, p, s, groups)  # (B, groups, nh, nw, d, k, k)
    nh, nw = win.shape[2:4]
    ref = F.unfold(x, k, padding=p, stride=s).reshape(2, groups, d, k, k, nh, nw).permute(0, 1, 5, 6, 2, 3, 4)
    assert torch.equal(win, ref)
    y = torch.randn_like(win)
    assert torch.allclose((win * y).sum(), (x * block_fold(y, (hh, ww), k, p, s)).sum())
    assert torch.equal(torch.autograd.grad(win, x, y)[0], block_fold(y, (hh, ww), k, p, s))
    yg = y.detach().requires_grad_(True)
    z = torch.randn(2, groups * d, hh, ww, dtype=torch.float64)
    assert torch.equal(
        torch.autograd.grad(block_fold(yg, (hh, ww), k, p, s), yg, z)[0], block_windows(z, k, p, s, groups)
    )
    tiny = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)  # second derivatives, numerically
    assert torch.autograd.gradgradcheck(lambda t: block_windows(t, 3, 1, 2, 2), (tiny,))


def test_padded_keys_get_no_weight() -> None:
    """A large value at a padded position must not leak: padding is zero, and its weight must be zero too."""
    torch.manual_seed(1)
    m = HaloAttention(8, 8, 4, 4, 2, 1, 2, 1).double()
    with torch.no_grad():
        m.relpos.table_h.zero_()
        m.relpos.table_w.zero_()
        m.q.weight.zero_()  # uniform attention over the valid keys of each window
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    v = torch.einsum("oc,bchw->bohw", m.kv.weight[8:, :, 0, 0], x)
    got = m(x)
    # top-left query: its window rows/cols -1..2, valid 0..2 -> the mean of v over the 3x3 corner
    assert torch.allclose(got[0, :, 0, 0], v[0, :, :3, :3].mean(dim=(1, 2)), atol=1e-12)


def test_shapes_gradient_and_export() -> None:
    torch.manual_seed(0)
    m = HaloAttention(16, 32, 8, 8, 4, 2, 4, 2)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 32, 4, 4)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.relpos.table_h.shape == (2 * 8 - 1, 4)
    ep = torch.export.export(m.eval(), (torch.randn(1, 16, 8, 8),))
    x1 = torch.randn(1, 16, 8, 8)
    assert torch.allclose(ep.module()(x1), m(x1), atol=1e-5)


def _plan(spec: dict, in_shape: tuple[int, int, int], stride: int = 1) -> tuple[int, ...]:
    ctx = Ctx(in_shape, "stages.1.blocks.0.mixer", stride=stride, input_size=600, in_stride=8)
    return MIXERS.get("halo").plan(HaloMixerSpec(type="halo", **spec), ctx).out_shape


def test_plan_shapes() -> None:
    assert _plan({"block_size": 10, "halo_size": 3, "value_ratio": 4.0}, (64, 80, 80)) == (256, 80, 80)
    assert _plan({"block_size": 10, "halo_size": 3, "value_ratio": 2.5}, (64, 80, 40), 2) == (160, 40, 20)


@pytest.mark.parametrize(
    ("spec", "in_shape", "stride", "path", "message"),
    [
        (
            {"block_size": 10, "halo_size": 3},
            (64, 75, 75),
            1,
            "stages.1.blocks.0.mixer",
            "feature map 75x75 is not divisible by block_size=10 (input 600 px, stride 8)",
        ),
        (
            {"block_size": 8, "halo_size": 3},
            (64, 16, 12),
            2,
            "stages.1.blocks.0.mixer",
            "feature map 16x12 is not divisible by block_size=8 (input 600 px, stride 8)",
        ),
        (
            {"block_size": 5, "halo_size": 1},
            (64, 20, 20),
            2,
            "stages.1.blocks.0.mixer.block_size",
            "stride 2",
        ),
        ({"block_size": 4, "halo_size": 1}, (64, 16, 16), 4, "stages.1.blocks.0.mixer", "stride 1 or 2"),
        (
            {"block_size": 4, "halo_size": 1, "num_heads": 6},
            (64, 16, 16),
            1,
            "stages.1.blocks.0.mixer.num_heads",
            "num_heads=6 must divide the bottleneck width w=64",
        ),
        (
            {"block_size": 4, "halo_size": 1, "num_heads": 8, "value_ratio": 1.5},
            (8, 16, 16),
            1,
            "stages.1.blocks.0.mixer.num_heads",
            "num_heads=8 must divide the value width r_v*w=12",
        ),
        (
            {"block_size": 4, "halo_size": 1, "num_heads": 1, "value_ratio": 0.35},
            (10, 16, 16),
            1,
            "stages.1.blocks.0.mixer.value_ratio",
            "must be a positive integer",
        ),
    ],
)
def test_shape_errors(spec: dict, in_shape: tuple[int, int, int], stride: int, path: str, message: str) -> None:
    with pytest.raises(ShapeError) as info:
        _plan(spec, in_shape, stride)
    (problem,) = info.value.problems
    assert problem.path == path
    assert message in problem.message


def test_exact_block_size_message() -> None:
    with pytest.raises(ShapeError) as info:
        _plan({"block_size": 10, "halo_size": 3}, (64, 75, 75))
    assert info.value.problems[0].message == (
        "feature map 75x75 is not divisible by block_size=10 (input 600 px, stride 8)"
    )


TINY = """\
name: tiny_halo
input: {channels: 3, size: 32}
stem: {type: conv, channels: 16, kernel_size: 3, stride: 2}
stages:
  - channels: 32
    blocks: [{type: bottleneck, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}}]
  - channels: 64
    stride: 2
    blocks: [{type: bottleneck, repeat: 2, mixer: {type: halo, block_size: BS, halo_size: 1, num_heads: 2}}]
head: {type: classifier, num_classes: 10}
"""


def test_located_error_in_a_model() -> None:
    plan = plan_model(spec_from_text(TINY.replace("BS", "4")))
    assert [s.out_shape for s in plan.stages] == [(32, 16, 16), (64, 8, 8)]
    with pytest.raises(ShapeError) as info:
        plan_model(spec_from_text(TINY.replace("BS", "16"), "tiny.yaml"))
    text = str(info.value)
    assert text.startswith("tiny.yaml:9:44: ")
    assert "stages.1.blocks.0.mixer: feature map 8x8 is not divisible by block_size=16 (input 32 px, stride 4)" in text


@pytest.fixture
def cuda_branch(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    return record_sdpa(monkeypatch)


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_branch_hands_sdpa_4d_contiguous_operands_and_matches_float64_reference(
    cuda_branch: list[dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
    channels_last: bool,
    c: int,
    cv: int,
    hh: int,
    ww: int,
    b: int,
    h: int,
    n: int,
    s: int,
) -> None:
    """The CUDA path, run on CPU tensors: one SDPA call per forward with 4-D contiguous q/k/v (head dims padded
    to a multiple of 8 where they are not) and the bias in q's dtype; its output equals the per-query float64
    reference and its gradients the CPU path's, from NCHW and channels-last inputs (whose format it keeps)."""
    torch.manual_seed(4)
    m = HaloAttention(c, cv, hh, ww, b, h, n, s).double()
    x = torch.randn(2, c, hh, ww, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    got = m(x)
    (call,) = cuda_branch
    blocks = (hh // b) * (ww // b)
    assert_fused_arguments(call, n * blocks, (b // s) ** 2, (b + 2 * h) ** 2, torch.float64)
    assert call["enabled"] == {"efficient": True, "math": True, "cudnn": False}  # kernels that differentiate a bias
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert (got - _reference(m, x.detach())).abs().max().item() <= 1e-6
    assert_cpu_path_gradients(m, x, got, monkeypatch)


def test_cuda_branch_under_bf16_autocast_hands_the_bias_in_the_query_dtype(
    cuda_branch: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under bf16 autocast the relative-position bias (whose padding mask is a float32 buffer) reaches SDPA in
    bf16 like q/k/v, as the memory-efficient kernel requires; the output is the float32 CPU path's within bf16
    rounding and the backward runs through the bias."""
    torch.manual_seed(5)
    m = HaloAttention(12, 24, 8, 12, 4, 2, 3, 1)  # dq 4 and dv 8: q/k padded to 8
    x = torch.randn(2, 12, 8, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m(x)
    (call,) = cuda_branch
    assert_fused_arguments(call, 3 * 6, 16, 64, torch.bfloat16)
    monkeypatch.setattr(relpos, "FUSED_DEVICES", frozenset())  # the CPU path
    want = m(x)
    assert (got.float() - want).abs().max().item() <= 2e-2 * want.abs().max().item()
    got.float().square().sum().backward()
    assert m.relpos.table_h.grad is not None and torch.isfinite(m.relpos.table_h.grad).all()
    assert x.grad is not None and torch.isfinite(x.grad).all()
