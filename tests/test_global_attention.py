"""BoTNet global self-attention (arXiv:2101.11605) against a float64 per-query reference, plus shape rules."""

from __future__ import annotations

import math

import pytest
import torch

from archdsl import ShapeError
from archdsl.kinds import MIXERS
from archdsl.mixers.global_attention import GlobalAttentionSpec
from archdsl.nn.global_attention import GlobalAttention
from archdsl.plan.shapes import Ctx


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
