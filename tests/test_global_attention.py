"""BoTNet global self-attention (arXiv:2101.11605) against a float64 per-query reference, on the CPU path and on
the CUDA path (run on CPU tensors: what it hands the fused kernel), plus shape rules."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from archdsl import ShapeError
from archdsl.kinds import MIXERS
from archdsl.mixers.global_attention import GlobalAttentionSpec
from archdsl.nn import relpos
from archdsl.nn.global_attention import GlobalAttention
from archdsl.plan.shapes import Ctx
from tests.fused import assert_cpu_path_gradients, record_sdpa


def _reference(m: GlobalAttention, x: torch.Tensor) -> torch.Tensor:
    """MHSA from the paper's equation, one query pixel at a time, then the 2x2 average pool for stride 2.

    y_ij = sum_ab softmax_ab((q_ij·k_ab + q_ij·r_{a-i} + q_ij·r'_{b-j}) / sqrt(d)) v_ab over every pixel ab.
    """
    n, d, s = m.heads, m.head_dim, m.stride
    w = n * d
    wq, wk, wv = (m.qkv.weight[i * w : (i + 1) * w, :, 0, 0] for i in range(3))
    r_h, r_w = m.relpos.table_h, m.relpos.table_w
    bsz, _, height, width = x.shape
    full = torch.zeros(bsz, w, height, width, dtype=x.dtype)
    for bi in range(bsz):
        for head in range(n):
            hs = slice(head * d, (head + 1) * d)
            for qy in range(height):
                for qx in range(width):
                    q = wq[hs] @ x[bi, :, qy, qx]
                    logits, values = [], []
                    for ky in range(height):
                        for kx in range(width):
                            k = wk[hs] @ x[bi, :, ky, kx]
                            rel = q @ r_h[ky - qy + height - 1] + q @ r_w[kx - qx + width - 1]
                            logits.append((q @ k + rel) / math.sqrt(d))
                            values.append(wv[hs] @ x[bi, :, ky, kx])
                    p = torch.softmax(torch.stack(logits), dim=0)
                    full[bi, hs, qy, qx] = (p[:, None] * torch.stack(values)).sum(0)
    if s == 1:
        return full
    out = torch.zeros(bsz, w, height // s, width // s, dtype=x.dtype)
    for oy in range(height // s):
        for ox in range(width // s):
            out[:, :, oy, ox] = full[:, :, s * oy : s * oy + s, s * ox : s * ox + s].mean(dim=(2, 3))
    return out


@pytest.mark.parametrize(
    ("c", "hh", "ww", "n", "s"),
    [(8, 4, 4, 2, 1), (16, 6, 4, 4, 2), (12, 3, 5, 3, 1), (8, 4, 6, 1, 2)],
)
def test_matches_float64_reference(c: int, hh: int, ww: int, n: int, s: int) -> None:
    torch.manual_seed(0)
    m = GlobalAttention(c, hh, ww, n, s).double()
    x = torch.randn(2, c, hh, ww, dtype=torch.float64)
    got = m(x)
    assert got.shape == (2, c, hh // s, ww // s)
    assert (got - _reference(m, x)).abs().max().item() <= 1e-6


def test_tables_follow_the_map() -> None:
    m = GlobalAttention(512, 14, 14, 4, 2)
    assert m.relpos.table_h.shape == (27, 128) and m.relpos.table_w.shape == (27, 128)
    assert sum(p.numel() for p in m.parameters()) == 3 * 512 * 512 + 2 * 27 * 128


def test_shapes_gradient_and_export() -> None:
    torch.manual_seed(0)
    m = GlobalAttention(16, 6, 4, 4, 2)
    x = torch.randn(2, 16, 6, 4, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 16, 3, 2)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    ep = torch.export.export(m.eval(), (torch.randn(1, 16, 6, 4),))
    x1 = torch.randn(1, 16, 6, 4)
    assert torch.allclose(ep.module()(x1), m(x1), atol=1e-5)


def _plan(num_heads: int, in_shape: tuple[int, int, int], stride: int = 1) -> tuple[int, ...]:
    ctx = Ctx(in_shape, "stages.3.blocks.0.mixer", stride=stride, input_size=224, in_stride=16)
    spec = GlobalAttentionSpec(type="global_attention", num_heads=num_heads)
    return MIXERS.get("global_attention").plan(spec, ctx).out_shape


def test_plan_shapes() -> None:
    assert _plan(4, (512, 14, 14), 2) == (512, 7, 7)
    assert _plan(4, (512, 7, 7)) == (512, 7, 7)


@pytest.mark.parametrize(
    ("heads", "in_shape", "stride", "path", "message"),
    [
        (
            3,
            (512, 14, 14),
            1,
            "stages.3.blocks.0.mixer.num_heads",
            "num_heads=3 must divide the bottleneck width w=512",
        ),
        (4, (512, 16, 16), 4, "stages.3.blocks.0.mixer", "stride 1 or 2"),
        (
            4,
            (512, 7, 7),
            2,
            "stages.3.blocks.0.mixer",
            "feature map 7x7 is not divisible by the stride 2 (input 224 px, stride 16)",
        ),
    ],
)
def test_shape_errors(heads: int, in_shape: tuple[int, int, int], stride: int, path: str, message: str) -> None:
    with pytest.raises(ShapeError) as info:
        _plan(heads, in_shape, stride)
    (problem,) = info.value.problems
    assert problem.path == path
    assert message in problem.message


@pytest.fixture
def cuda_branch(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    return record_sdpa(monkeypatch)


@pytest.mark.parametrize(
    ("c", "hh", "ww", "n", "s"),
    [(8, 4, 4, 2, 1), (16, 6, 4, 4, 2), (12, 3, 5, 3, 1), (16, 4, 6, 1, 2)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_branch_hands_sdpa_4d_contiguous_operands_and_matches_float64_reference(
    cuda_branch: list[dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
    channels_last: bool,
    c: int,
    hh: int,
    ww: int,
    n: int,
    s: int,
) -> None:
    """The CUDA path, run on CPU tensors: q/k/v (B, n, HW, d) 4-D and contiguous whatever the input's memory
    format (BoTNet's was fused only when built channels-last), head dims padded to a multiple of 8 (d = 4, 16), the
    bias (B, n, HW, HW) in q's dtype; output equal to the float64 reference, gradients to the CPU path's."""
    torch.manual_seed(1)
    m = GlobalAttention(c, hh, ww, n, s).double()
    x = torch.randn(2, c, hh, ww, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    got = m(x)
    (call,) = cuda_branch
    q, k, v, mask = (call[name] for name in ("q", "k", "v", "mask"))
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
    assert isinstance(mask, torch.Tensor)
    assert q.dim() == k.dim() == v.dim() == 4
    assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous()
    assert q.shape == k.shape == v.shape == (2, n, hh * ww, -(-(c // n) // 8) * 8)
    assert mask.shape == (2, n, hh * ww, hh * ww) and mask.dtype == q.dtype == torch.float64
    assert call["kw"] == {"scale": 1.0}
    assert (got - _reference(m, x.detach())).abs().max().item() <= 1e-6
    if s == 1:  # the pool of stride 2 decides its own output format
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert_cpu_path_gradients(m, x, got, monkeypatch)


def test_cuda_branch_under_bf16_autocast_hands_the_bias_in_the_query_dtype(
    cuda_branch: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(2)
    m = GlobalAttention(32, 6, 6, 4, 1)
    x = torch.randn(2, 32, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m(x)
    (call,) = cuda_branch
    q, k, v, mask = (call[name] for name in ("q", "k", "v", "mask"))
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
    assert isinstance(mask, torch.Tensor)
    assert q.dtype == k.dtype == v.dtype == mask.dtype == torch.bfloat16
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous() and q.dim() == 4
    monkeypatch.setattr(relpos, "FUSED_DEVICES", frozenset())  # the CPU path
    want = m(x)
    assert (got.float() - want).abs().max().item() <= 2e-2 * want.abs().max().item()
    got.float().square().sum().backward()
    assert m.relpos.table_w.grad is not None and torch.isfinite(m.relpos.table_w.grad).all()


def test_the_bias_is_kept_from_kernels_that_cannot_take_or_differentiate_it() -> None:
    """SDPA may choose the memory-efficient kernel or the math fallback, of those the caller enabled: never cuDNN's
    (no bias gradient) or flash (no mask). Under sdpa_kernel([FLASH, EFFICIENT]), the device check's restriction,
    only the efficient kernel remains, so an unfused call raises instead of falling back."""
    assert relpos.bias_backends() == [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        assert relpos.bias_backends() == [SDPBackend.EFFICIENT_ATTENTION]
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]):
        assert relpos.bias_backends() == [SDPBackend.MATH]


def test_attend_fused_pads_head_dims_and_cuts_the_padding_off() -> None:
    """attend_fused(q, k, v, bias) is softmax(q k^T + bias) v for head dims not multiples of 8 (q/k 6, v 10)."""
    torch.manual_seed(3)
    q, k = torch.randn(2, 3, 5, 6, dtype=torch.float64), torch.randn(2, 3, 7, 6, dtype=torch.float64)
    v, bias = torch.randn(2, 3, 7, 10, dtype=torch.float64), torch.randn(2, 3, 5, 7, dtype=torch.float64)
    want = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1) @ v
    got = relpos.attend_fused(q, k, v, bias)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)


def test_cuda_branch_compiles_in_one_graph(cuda_branch: list[dict[str, object]]) -> None:
    """torch.compile(fullgraph=True) traces the CUDA path (its kernel choice and all) without a graph break."""
    torch.manual_seed(4)
    m = GlobalAttention(12, 3, 5, 3, 1)
    x = torch.randn(2, 12, 3, 5)
    compiled = torch.compile(m, fullgraph=True, dynamic=False)
    assert torch.allclose(compiled(x), m(x), atol=1e-5)
