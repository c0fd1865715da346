"""Halo attention's ``compat: timm`` mode against a loop-based float64 formulation of ``timm.layers.HaloAttn``
(timm is not installed in CI; ``benchmarks/halo_timm_mode.py`` compares against timm itself), on the CPU path and
on the CUDA path (run on CPU tensors); the default mode unchanged; the field through spec, plan and build."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from archdsl import SpecError, build_model, plan_model, spec_from_text
from archdsl.compiler.count import measure
from archdsl.nn.halo import HaloAttention
from archdsl.plan.shapes import ModelPlan
from tests.fused import assert_cpu_path_gradients, assert_fused_arguments, record_sdpa


def _timm_reference(m: HaloAttention, x: torch.Tensor) -> torch.Tensor:
    """timm's HaloAttn (``scale_pos_embed=False``), one query and one key at a time.

    The keys/values are zero-padded by h and every b x b block attends to all (b+2h)^2 keys of its window,
    padding included. The query (i, j) of a block (i, j < b/s) is the pixel (s*i, s*j) of the block; a key at
    window position (u, v) (u, v < b+2h) reads the table rows ``u - i + win - 1`` and ``v - j + win - 1`` (timm's
    ``rel_logits_1d`` indexing). Logit: ``(q·k) / sqrt(d) + q·R_h[row] + q·R_w[col]``.
    """
    b, h, s, n = m.block, m.halo, m.stride, m.heads
    w = m.q.weight.shape[0]
    dq, dv, win, bq = m.qk_dim, m.v_dim, m.window, m.block // m.stride
    wq, wk, wv = m.q.weight[:, :, 0, 0], m.kv.weight[:w, :, 0, 0], m.kv.weight[w:, :, 0, 0]
    r_h, r_w = m.relpos.table_h, m.relpos.table_w
    bsz, _, height, width = x.shape
    padded = F.pad(x, (h, h, h, h))  # zero pixels give zero keys and values: the convs have no bias
    out = torch.zeros(bsz, n * dv, height // s, width // s, dtype=x.dtype)
    for bi in range(bsz):
        for head in range(n):
            qs, vs = slice(head * dq, (head + 1) * dq), slice(head * dv, (head + 1) * dv)
            for by in range(height // b):
                for bx in range(width // b):
                    for i in range(bq):
                        for j in range(bq):
                            q = wq[qs] @ x[bi, :, by * b + s * i, bx * b + s * j]
                            logits, values = [], []
                            for u in range(win):
                                for v in range(win):
                                    pixel = padded[bi, :, by * b + u, bx * b + v]
                                    rel = q @ r_h[u - i + win - 1] + q @ r_w[v - j + win - 1]
                                    logits.append((q @ (wk[qs] @ pixel)) / math.sqrt(dq) + rel)
                                    values.append(wv[vs] @ pixel)
                            p = torch.softmax(torch.stack(logits), dim=0)
                            out[bi, vs, by * bq + i, bx * bq + j] = (p[:, None] * torch.stack(values)).sum(0)
    return out


CASES = [
    # channels, value_channels, height, width, block, halo, heads, stride
    (8, 8, 8, 8, 4, 1, 2, 1),
    (8, 16, 4, 8, 4, 2, 2, 1),
    (4, 4, 4, 4, 2, 3, 1, 1),  # halo wider than the block
    (8, 8, 8, 8, 4, 1, 2, 2),
    (8, 16, 4, 8, 4, 2, 2, 2),
    (6, 6, 6, 6, 6, 2, 3, 2),
]


def _module(c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int, seed: int) -> HaloAttention:
    torch.manual_seed(seed)
    return HaloAttention(c, cv, hh, ww, b, h, n, s, compat="timm").double()


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), CASES)
def test_timm_mode_matches_the_timm_formulation(
    c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int
) -> None:
    m = _module(c, cv, hh, ww, b, h, n, s, seed=0)
    x = torch.randn(2, c, hh, ww, dtype=torch.float64)
    got, want = m(x), _timm_reference(m, x)
    assert got.shape == want.shape == (2, cv, hh // s, ww // s)
    assert (got - want).abs().max().item() <= 1e-10 * want.abs().max().item()


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), [CASES[1], CASES[4]])
def test_timm_mode_gradients_match_the_timm_formulation(
    c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int
) -> None:
    m = _module(c, cv, hh, ww, b, h, n, s, seed=1)
    x = torch.randn(1, c, hh, ww, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1, cv, hh // s, ww // s, dtype=torch.float64)
    params = [x, *m.parameters()]
    got = torch.autograd.grad(m(x), params, g)
    want = torch.autograd.grad(_timm_reference(m, x), params, g)
    for a, w in zip(got, want, strict=True):
        assert (a - w).abs().max().item() <= 1e-10 * w.abs().max().item()


@pytest.mark.parametrize(("c", "cv", "hh", "ww", "b", "h", "n", "s"), CASES)
def test_timm_mode_cuda_branch_is_the_same_fused_call_without_the_mask(
    monkeypatch: pytest.MonkeyPatch, c: int, cv: int, hh: int, ww: int, b: int, h: int, n: int, s: int
) -> None:
    """The CUDA path, run on CPU tensors: the same single SDPA call as the default mode, its bias finite (no
    padding mask; the default mode's has -inf wherever a window reaches past the map), the output the timm
    formulation's and the gradients the CPU path's."""
    calls = record_sdpa(monkeypatch)
    m = _module(c, cv, hh, ww, b, h, n, s, seed=2)
    x = torch.randn(2, c, hh, ww, dtype=torch.float64, requires_grad=True)
    got = m(x)
    (call,) = calls
    assert_fused_arguments(call, n * (hh // b) * (ww // b), (b // s) ** 2, (b + 2 * h) ** 2, torch.float64)
    assert isinstance(call["mask"], torch.Tensor) and torch.isfinite(call["mask"]).all()
    want = _timm_reference(m, x.detach())
    assert (got - want).abs().max().item() <= 1e-10 * want.abs().max().item()
    HaloAttention(c, cv, hh, ww, b, h, n, s).double()(x)  # the default mode, for its mask
    default_mask = calls[1]["mask"]
    assert isinstance(default_mask, torch.Tensor) and torch.isinf(default_mask).any() == (h > 0)
    assert_cpu_path_gradients(m, x, got, monkeypatch)


def test_timm_mode_reads_timms_table_rows() -> None:
    """Row ``k - i + win - 1`` for window position k and query-block index i, at stride 1 and 2 (the default
    mode: ``k - (h + s*i) + win - 1``); the same parameters, shapes and names as the default mode's."""
    for s in (1, 2):
        timm_mode = HaloAttention(8, 8, 8, 8, 4, 2, 2, s, compat="timm")
        default = HaloAttention(8, 8, 8, 8, 4, 2, 2, s)
        win, bq = 8, 4 // s
        rows = torch.arange(win)[None, :] - torch.arange(bq)[:, None] + win - 1
        assert torch.equal(timm_mode.relpos.index_h, rows) and torch.equal(timm_mode.relpos.index_w, rows)
        pixels = torch.arange(win)[None, :] - (2 + s * torch.arange(bq))[:, None] + win - 1
        assert torch.equal(default.relpos.index_h, pixels)
        assert {k: v.shape for k, v in timm_mode.state_dict().items()} == {
            k: v.shape for k, v in default.state_dict().items()
        }
    assert "compat=timm" in repr(timm_mode) and "compat" not in repr(default)
    with pytest.raises(ValueError, match="compat='keras' is not one of \\['paper', 'timm'\\]"):
        HaloAttention(8, 8, 8, 8, 4, 2, 2, 1, compat="keras")


def _fill(m: HaloAttention) -> None:
    """Deterministic weights that do not depend on torch's random generator."""
    with torch.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.37 + i).reshape(p.shape) * 0.5)


@pytest.mark.parametrize(
    ("cfg", "want"),
    [  # sum, sum of squares, y[1, -1, -1, -1], y[0, 0, 0, 0], recorded before the compat field existed
        (
            (8, 16, 8, 12, 4, 2, 2, 2),
            (-0.020456714810367378, 0.09706207699693897, 0.007191613159100368, 0.005167199018978059),
        ),
        (
            (16, 16, 8, 8, 4, 1, 4, 1),
            (3.363795281269525, 4.356791836977458, 0.04974464782465394, -0.026924137456114387),
        ),
    ],
)
def test_default_mode_is_unchanged(cfg: tuple[int, int, int, int, int, int, int, int], want: tuple[float, ...]) -> None:
    c, _, hh, ww = cfg[:4]
    x = torch.cos(torch.arange(2 * c * hh * ww, dtype=torch.float64) * 0.11).reshape(2, c, hh, ww)
    outputs = []
    for m in (HaloAttention(*cfg).double(), HaloAttention(*cfg, compat="paper").double()):
        _fill(m)
        y = m(x)
        got = (y.sum().item(), y.square().sum().item(), y[1, -1, -1, -1].item(), y[0, 0, 0, 0].item())
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
        outputs.append(y)
    assert torch.equal(outputs[0], outputs[1])


SPEC = """\
name: tiny_halo
input: {channels: 3, size: 32}
stem: {type: conv, channels: 16, kernel_size: 3, stride: 2}
stages:
  - channels: 32
    blocks: [{type: bottleneck, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2COMPAT}}]
  - channels: 64
    stride: 2
    blocks: [{type: bottleneck, mixer: {type: halo, block_size: 4, halo_size: 2, num_heads: 2COMPAT}}]
head: {type: classifier, num_classes: 10}
"""


def _mixers(plan: ModelPlan) -> list[dict[str, object]]:
    """The recipe arguments of every halo mixer of the plan."""
    return [dict(node.recipe.kwargs) for node in plan.nodes() if node.role == "mixer" and node.type == "halo"]


def test_spec_field_through_plan_and_build() -> None:
    """The default stays out of the recipe (existing plans unchanged); ``compat: timm`` reaches the module; the
    counts are the same in both modes and match the built model's; an unknown value is a located spec error."""
    default = plan_model(spec_from_text(SPEC.replace("COMPAT", "")))
    explicit = plan_model(spec_from_text(SPEC.replace("COMPAT", ", compat: paper")))
    timm = plan_model(spec_from_text(SPEC.replace("COMPAT", ", compat: timm")))
    assert len(_mixers(default)) == 2 and all("compat" not in k for k in _mixers(default))
    assert _mixers(explicit) == _mixers(default)
    assert [k.pop("compat") for k in _mixers(timm)] == ["timm", "timm"]
    assert [{k: v for k, v in r.items() if k != "compat"} for r in _mixers(timm)] == _mixers(default)
    assert (timm.params, timm.flops) == (default.params, default.flops)
    model = build_model(spec_from_text(SPEC.replace("COMPAT", ", compat: timm")), device="meta")
    halos = [mod for mod in model.modules() if isinstance(mod, HaloAttention)]
    assert [mod.compat for mod in halos] == ["timm", "timm"]
    got = measure(model, timm.input)
    assert got.params == timm.params and abs(got.flops - timm.flops) <= 0.02 * got.flops
    with pytest.raises(SpecError) as info:
        spec_from_text(SPEC.replace("COMPAT", ", compat: keras"), "tiny.yaml")
    assert "tiny.yaml:6:" in str(info.value) and "compat" in str(info.value)
