"""The CUDA branch of halo and global attention, run on CPU tensors: what it hands
``F.scaled_dot_product_attention`` and that its gradients are the CPU path's (tests/test_halo.py and
tests/test_global_attention.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn import relpos

__all__ = ["assert_cpu_path_gradients", "assert_fused_arguments", "record_sdpa"]


def record_sdpa(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Run the CUDA branch (fused_path) on CPU tensors and record every F.scaled_dot_product_attention call: its
    tensors and keywords, and which kernels were enabled while it ran."""
    monkeypatch.setattr(relpos, "FUSED_DEVICES", frozenset({"cpu", "cuda"}))
    calls: list[dict[str, object]] = []
    real = F.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None, **kw: object):
        enabled = (
            None  # the kernel flags cannot be read inside a traced graph
            if torch.compiler.is_compiling()
            else {
                "efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                "math": torch.backends.cuda.math_sdp_enabled(),
                "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
            }
        )
        calls.append({"q": q, "k": k, "v": v, "mask": attn_mask, "kw": kw, "enabled": enabled})
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


def assert_fused_arguments(call: dict[str, object], heads: int, nq: int, nk: int, dtype: torch.dtype) -> None:
    """What the memory-efficient kernel takes: 4-D (batch, heads, tokens, dim) operands, contiguous, head dims a
    multiple of 8, and the position bias as an additive mask (batch, heads, Lq, Lk) in the query's dtype."""
    q, k, v, mask = (call[name] for name in ("q", "k", "v", "mask"))
    assert isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
    assert isinstance(mask, torch.Tensor)
    assert q.dim() == k.dim() == v.dim() == 4
    assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous()
    assert q.shape[1] == k.shape[1] == v.shape[1] == heads and q.shape[2] == nq and k.shape[2] == v.shape[2] == nk
    assert q.shape[-1] == k.shape[-1] and q.shape[-1] % 8 == 0 and v.shape[-1] % 8 == 0
    assert q.dtype == k.dtype == v.dtype == mask.dtype == dtype
    assert mask.shape == (q.shape[0], heads, nq, nk)
    assert call["kw"] == {"scale": 1.0}


def assert_cpu_path_gradients(
    m: nn.Module, x: torch.Tensor, got: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gradients through the fused output ``got`` of ``m(x)`` equal the CPU path's (float64)."""
    g = torch.randn_like(got)
    params = [x, *m.parameters()]
    fused_grads = torch.autograd.grad(got, params, g)
    monkeypatch.setattr(relpos, "FUSED_DEVICES", frozenset())  # the CPU path
    cpu_grads = torch.autograd.grad(m(x), params, g)
    for a, w in zip(fused_grads, cpu_grads, strict=True):
        assert (a - w).abs().max().item() <= 1e-10
