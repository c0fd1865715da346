"""Outlook attention vs a loop-based float64 reference from the VOLO paper (arXiv:2106.13112), and the shape
rules, export and gradients of the outlooker, transformer, patch-embed stem and class-attention head."""

from __future__ import annotations

import math
from typing import cast

import pytest
import torch
import torch.nn.functional as F

from archdsl import ShapeError, build_model, plan_model, spec_from_text
from archdsl.compiler.count import measure
from archdsl.nn.class_attention import ClassAttentionBlock, ClassAttentionHead
from archdsl.nn.drop_path import DropPath
from archdsl.nn.outlook import OutlookAttention, Outlooker
from archdsl.nn.transformer import TransformerBlock
from archdsl.nn.windows import fold, windows


def _reference_outlook(attn: OutlookAttention, x: torch.Tensor) -> torch.Tensor:
    """Outlook attention with explicit loops; x is (B, H, W, C) float64."""
    b_, h_, w_, c = x.shape
    heads, k, p, s = attn.num_heads, attn.kernel_size, attn.padding, attn.stride
    d = c // heads
    k2 = k * k
    wv = attn.v.weight
    bv = attn.v.bias if attn.v.bias is not None else torch.zeros(c, dtype=x.dtype)
    out = torch.zeros(b_, h_, w_, c, dtype=x.dtype)
    for b in range(b_):
        v = x[b] @ wv.T + bv  # (H, W, C)
        for a in range(math.ceil(h_ / s)):
            for e in range(math.ceil(w_ / s)):
                # pooled token: mean of the valid pixels of the s x s cell (ceil mode)
                cell = x[b, a * s : min((a + 1) * s, h_), e * s : min((e + 1) * s, w_)]
                pooled = cell.reshape(-1, c).mean(dim=0)
                logits = (attn.attn.weight @ pooled + attn.attn.bias).reshape(heads, k2, k2)
                weights = torch.softmax(logits * d**-0.5, dim=-1)  # [head, target i, source j]
                # window top-left corner; its centre is (a*s, e*s) when p = (k-1)/2
                top, left = a * s - p, e * s - p
                window = torch.zeros(k2, c, dtype=x.dtype)  # zero padding outside the map
                for j in range(k2):
                    y, z = top + j // k, left + j % k
                    if 0 <= y < h_ and 0 <= z < w_:
                        window[j] = v[y, z]
                for hd in range(heads):
                    mixed = weights[hd] @ window[:, hd * d : (hd + 1) * d]  # (k², d)
                    for i in range(k2):
                        y, z = top + i // k, left + i % k
                        if 0 <= y < h_ and 0 <= z < w_:
                            out[b, y, z, hd * d : (hd + 1) * d] += mixed[i]
    return out @ attn.proj.weight.T + attn.proj.bias


CASES = [
    # (H, W, C, heads, kernel, padding, stride, qkv_bias)
    (6, 6, 8, 2, 3, 1, 2, False),
    (5, 7, 6, 3, 3, 1, 2, True),  # ceil mode on both sides
    (5, 4, 4, 1, 3, 1, 1, False),  # stride 1: a window at every pixel
    (7, 5, 8, 4, 5, 2, 2, False),  # k=5: padding must not land in the dilation slot
    (9, 6, 6, 2, 3, 1, 3, True),  # stride 3, partial cells
    (1, 2, 4, 2, 3, 1, 2, False),  # map smaller than a window
]


@pytest.mark.parametrize(("h", "w", "c", "heads", "k", "p", "s", "bias"), CASES)
def test_outlook_attention_matches_loop_reference(
    h: int, w: int, c: int, heads: int, k: int, p: int, s: int, bias: bool
) -> None:
    torch.manual_seed(0)
    attn = OutlookAttention(c, heads, k, p, s, qkv_bias=bias).double()
    with torch.no_grad():
        for param in attn.parameters():
            param.normal_(0.0, 0.5)  # sharp, non-uniform attention
    x = torch.randn(2, h, w, c, dtype=torch.float64)
    got = attn(x)
    want = _reference_outlook(attn, x)
    assert got.shape == (2, h, w, c)
    assert (got - want).abs().max().item() <= 1e-6


@pytest.mark.parametrize(("h", "w", "c", "heads", "k", "p", "s", "bias"), CASES[:4])
def test_outlook_attention_gradients_match_loop_reference(
    h: int, w: int, c: int, heads: int, k: int, p: int, s: int, bias: bool
) -> None:
    """The windows/fold pair has its own backward (each is the other's): input and weight gradients equal the
    loop reference's autograd gradients."""
    torch.manual_seed(1)
    attn = OutlookAttention(c, heads, k, p, s, qkv_bias=bias).double()
    x = torch.randn(2, h, w, c, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, h, w, c, dtype=torch.float64)
    params = [x, *attn.parameters()]
    got = torch.autograd.grad(attn(x), params, g)
    want = torch.autograd.grad(_reference_outlook(attn, x), params, g)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max().item() <= 1e-6


@pytest.mark.parametrize(
    ("h", "w", "k", "p", "s"), [(9, 7, 3, 1, 2), (8, 8, 3, 0, 1), (11, 10, 5, 2, 3), (2, 3, 3, 1, 2)]
)
def test_windows_are_unfold_and_fold_is_their_adjoint(h: int, w: int, k: int, p: int, s: int) -> None:
    """windows() gives F.unfold's values in the channels-last layout; fold() is its adjoint (<W x, y> = <x, F y>);
    autograd's backward of each is the other, and second derivatives pass gradgradcheck."""
    torch.manual_seed(0)
    heads, d = 2, 3
    x = torch.randn(2, h, w, heads * d, dtype=torch.float64, requires_grad=True)
    win = windows(x, k, p, s, heads)  # (B, nh, nw, heads, k², d)
    ref = F.unfold(x.permute(0, 3, 1, 2), k, padding=p, stride=s)  # (B, C*k², L), C major then k²
    nh, nw = win.shape[1:3]
    ref = ref.reshape(2, heads, d, k * k, nh, nw).permute(0, 4, 5, 1, 3, 2)
    assert torch.equal(win, ref)
    y = torch.randn_like(win)
    assert torch.allclose((win * y).sum(), (x * fold(y, (h, w), k, p, s)).sum())
    # a linear map's backward is its adjoint: windows' backward is fold and fold's is windows
    assert torch.equal(torch.autograd.grad(win, x, y)[0], fold(y, (h, w), k, p, s))
    yg = y.detach().requires_grad_(True)
    z = torch.randn(2, h, w, heads * d, dtype=torch.float64)
    assert torch.equal(torch.autograd.grad(fold(yg, (h, w), k, p, s), yg, z)[0], windows(z, k, p, s, heads))
    tiny = torch.randn(1, 5, 4, 2, dtype=torch.float64, requires_grad=True)  # second derivatives, numerically
    assert torch.autograd.gradgradcheck(lambda t: windows(t, 3, 1, 2, 2), (tiny,))


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """LayerNorm written out: (x - mean) / sqrt(var + eps) * gamma + beta over the last axis."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _mlp(x: torch.Tensor, mlp: torch.nn.Module) -> torch.Tensor:
    """fc2(GELU(fc1 x)) with the exact (erf) GELU written out."""
    h = x @ mlp.fc1.weight.T + mlp.fc1.bias  # type: ignore[operator]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    return h @ mlp.fc2.weight.T + mlp.fc2.bias  # type: ignore[operator]


def _randomise_norms(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)


def test_outlooker_block_is_pre_norm_residual() -> None:
    torch.manual_seed(1)
    block = Outlooker(8, 2, 24, 3, 1, 2, qkv_bias=True, drop_path=0.0).double().eval()
    _randomise_norms(block)
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)  # (B, C, H, W)
    t = x.permute(0, 2, 3, 1)
    t = t + _reference_outlook(block.attn, _ln(t, block.norm1))
    t = t + _mlp(_ln(t, block.norm2), block.mlp)
    assert (block(x) - t.permute(0, 3, 1, 2)).abs().max().item() <= 1e-10


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_transformer_block_matches_explicit_attention(qkv_bias: bool) -> None:
    torch.manual_seed(2)
    block = TransformerBlock(8, 2, 16, qkv_bias=qkv_bias, drop_path=0.0).double().eval()
    assert (block.attn.qkv.bias is not None) == qkv_bias
    _randomise_norms(block)
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    t = x.flatten(2).transpose(1, 2)  # (B, N, C)
    z = _ln(t, block.norm1)
    qkv = z @ block.attn.qkv.weight.T
    if qkv_bias:
        qkv = qkv + block.attn.qkv.bias
    q, k, v = qkv.chunk(3, dim=-1)
    ys = []
    for hd in range(2):
        sl = slice(hd * 4, hd * 4 + 4)
        a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        ys.append(a @ v[..., sl])
    t = t + torch.cat(ys, dim=-1) @ block.attn.proj.weight.T + block.attn.proj.bias
    t = t + _mlp(_ln(t, block.norm2), block.mlp)
    assert (block(x) - t.transpose(1, 2).reshape(2, 8, 3, 4)).abs().max().item() <= 1e-10


@pytest.mark.parametrize("aux_head", [True, False])
def test_class_attention_head_output(aux_head: bool) -> None:
    torch.manual_seed(3)
    head = ClassAttentionHead(8, 5, 2, 16, depth=2, aux_head=aux_head).double().eval()
    assert head.cls_token.shape == (1, 1, 8)  # timm's layout: checkpoints load as they are
    assert {n for n, _ in head.named_parameters() if n.startswith("aux_head")} == (
        {"aux_head.weight", "aux_head.bias"} if aux_head else set()
    )
    _randomise_norms(head)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    cls = head.cls_token.expand(2, -1, -1)
    for module in head.blocks:
        blk = cast(ClassAttentionBlock, module)
        z = _ln(torch.cat([cls, tokens], dim=1), blk.norm1)
        q = z[:, :1] @ blk.attn.q.weight.T
        k, v = (z @ blk.attn.kv.weight.T).chunk(2, dim=-1)
        ys = []
        for hd in range(2):
            sl = slice(hd * 4, hd * 4 + 4)
            a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
            ys.append(a @ v[..., sl])
        cls = cls + torch.cat(ys, dim=-1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
        cls = cls + _mlp(_ln(cls, blk.norm2), blk.mlp)
    z = _ln(torch.cat([cls, tokens], dim=1), head.norm)
    linear, aux = head.head, head.aux_head
    want = z[:, 0] @ linear.weight.T + linear.bias
    if aux_head:
        want = want + 0.5 * (z[:, 1:] @ aux.weight.T + aux.bias).max(dim=1).values
    assert (head(x) - want).abs().max().item() <= 1e-10


TINY = """
name: tiny_volo
input: {{channels: 3, size: {size}}}
stem: {{type: patch_embed, channels: 16, hidden: 8, patch_size: 4}}
stages:
  - channels: 16
    blocks: [{{type: outlooker, repeat: 2, num_heads: 2, mlp_ratio: 2.0}}]
  - channels: 32
    stride: 2
    transition: {{type: patch_merge}}
    pos_embed: true
    blocks: [{{type: transformer, repeat: 2, num_heads: 4, mlp_ratio: 2.0}}]
head: {{type: class_attention, num_classes: 7, num_heads: 4, mlp_ratio: 2.0}}
"""


@pytest.mark.parametrize("size", [32, 40])  # 40 px: 10x10 then 5x5 tokens
def test_tiny_model_plan_matches_build(size: int) -> None:
    spec = spec_from_text(TINY.format(size=size))
    plan = plan_model(spec)
    got = measure(build_model(spec, device="meta"), plan.input)
    assert got.params == plan.params
    assert got.flops == plan.flops
    assert got.output == plan.output == (7,)
    torch.manual_seed(0)
    model = build_model(spec)
    x = torch.randn(1, 3, size, size)
    stage_shapes = []
    y = model.stem(x)
    for stage in model.stages:
        y = stage(y)
        stage_shapes.append(tuple(y.shape[1:]))
    assert stage_shapes == [s.out_shape for s in plan.stages]


def test_tiny_model_gradients_finite() -> None:
    torch.manual_seed(0)
    model = build_model(spec_from_text(TINY.format(size=32))).train()
    for m in model.modules():
        if isinstance(m, DropPath):
            m.p = 0.1  # exercise stochastic depth
    loss = model(torch.randn(2, 3, 32, 32)).logsumexp(dim=1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


def test_tiny_model_exports() -> None:
    torch.manual_seed(0)
    model = build_model(spec_from_text(TINY.format(size=40))).eval()
    x = torch.randn(2, 3, 40, 40)
    program = torch.export.export(model, (x,))
    assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def _stage(blocks: str, channels: int = 16, extra: str = "") -> str:
    return f"""
name: bad
input: {{channels: 3, size: 32}}
stem: {{type: patch_embed, channels: 16, hidden: 8, patch_size: 4}}
stages:
  - {{channels: {channels}, {extra}blocks: [{blocks}]}}
head: {{type: class_attention, num_classes: 3, num_heads: 2}}
"""


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (_stage("{type: outlooker, num_heads: 3}"), "stages.0.blocks.0.num_heads", "divide"),
        (_stage("{type: transformer, num_heads: 5}"), "stages.0.blocks.0.num_heads", "divide"),
        (_stage("{type: outlooker, num_heads: 2, padding: 0}"), "stages.0.blocks.0.padding", "windows"),
        (
            _stage("{type: outlooker, num_heads: 2, kernel_size: 4, padding: 2}"),
            "stages.0.blocks.0.padding",
            "8x8",
        ),
        (_stage("{type: outlooker, num_heads: 2}", channels=32), "stages.0.blocks.0", "transition"),
        (_stage("{type: transformer, num_heads: 2}", channels=32), "stages.0.blocks.0", "transition"),
        (_stage("{type: outlooker, num_heads: 2}", extra="stride: 2, "), "stages.0.blocks.0", "stride"),
        (_stage("{type: transformer, num_heads: 2}", extra="stride: 2, "), "stages.0.blocks.0", "stride"),
        (
            _stage("{type: transformer, num_heads: 2}").replace("num_heads: 2}\n", "num_heads: 3}\n"),
            "head.num_heads",
            "divide",
        ),
        (
            _stage("{type: transformer, num_heads: 2}").replace("size: 32", "size: 34"),
            "stem.patch_size",
            "34x34",
        ),
    ],
    ids=[
        "outlooker-heads",
        "transformer-heads",
        "outlooker-no-padding",
        "outlooker-even-kernel",
        "outlooker-channels",
        "transformer-channels",
        "outlooker-stride",
        "transformer-stride",
        "head-heads",
        "stem-patch-size",
    ],
)
def test_shape_errors(text: str, path: str, words: str) -> None:
    spec = spec_from_text(text, "bad.yaml")
    with pytest.raises(ShapeError) as err:
        plan_model(spec)
    message = str(err.value)
    assert message.startswith("bad.yaml:")
    assert f": {path}: " in message
    assert words in message


def test_outlooker_and_transformer_with_transition_are_fine() -> None:
    text = _stage("{type: outlooker, num_heads: 2}", channels=32, extra="stride: 2, transition: {type: patch_merge}, ")
    plan = plan_model(spec_from_text(text))
    assert plan.stages[0].out_shape == (32, 4, 4)
