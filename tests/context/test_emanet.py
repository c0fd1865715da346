"""EM attention unit against Li et al. 2019 (EMAU, E-step / M-step, eq. 15 bases maintenance), in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.emanet import EMAUnit
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms

EPS = 1e-6  # the unit's guards: M-step 1 / (eps + sum_n z_nk), l2 normalisation 1 / (eps + ||mu_k||)


def _em(x: torch.Tensor, mu0: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T EM iterations written per basis: ``x`` (B, Ci, N), ``mu0`` (Ci, K); returns z (B, N, K), mu (B, Ci, K)."""
    b, _, n = x.shape
    k = mu0.shape[1]
    mu = mu0.unsqueeze(0).expand(b, -1, -1)
    z = torch.empty(b, n, k, dtype=x.dtype)
    lam = 1.0  # the paper's lambda, the authors' value
    for _ in range(iterations):
        # E-step: z_nk = exp(lambda x_n . mu_k) / sum_j exp(lambda x_n . mu_j)
        e = torch.stack([torch.exp(lam * (x * mu[:, :, j : j + 1]).sum(1)) for j in range(k)], dim=2)  # (B, N, K)
        z = e / e.sum(2, keepdim=True)
        # M-step: mu_k = sum_n z_nk x_n / sum_n z_nk, then mu_k / ||mu_k||_2
        new = []
        for j in range(k):
            m = (z[:, None, :, j] * x).sum(2) / (EPS + z[:, :, j].sum(1, keepdim=True))  # (B, Ci)
            new.append(m / (EPS + torch.sqrt((m * m).sum(1, keepdim=True))))
        mu = torch.stack(new, dim=2)
    return z, mu


def _reference(x: torch.Tensor, m: EMAUnit) -> torch.Tensor:
    b, _, h, w = x.shape
    feats = conv1x1(x, m.conv_in).flatten(2)  # (B, Ci, N)
    z, mu = _em(feats, m.mu[0], m.iterations)
    rec = torch.einsum("bck,bnk->bcn", mu, z).reshape(b, -1, h, w)  # x~_n = sum_k z_nk mu_k
    y = conv1x1(torch.relu(rec), m.conv_out)
    return torch.relu(x + bn_eval(y, m.norm))


def _unit(c: int, inner: int, k: int, t: int, stop_gradient: bool = False) -> EMAUnit:
    torch.manual_seed(0)
    m = EMAUnit(c, inner, k, t, 0.9, stop_gradient).double()
    randomise_norms(m)
    return m


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("bases", "iterations"), [(4, 1), (4, 3), (7, 2)])
@pytest.mark.parametrize("reduction", [1, 2])
def test_emau_matches_the_paper(shape: tuple[int, int, int, int], bases: int, iterations: int, reduction: int) -> None:
    m = _unit(shape[1], shape[1] // reduction, bases, iterations).eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_bases_start_l2_normalised_and_are_a_buffer() -> None:
    m = EMAUnit(16, 8, 64, 3, 0.9, False)
    assert m.mu.shape == (1, 8, 64)
    torch.testing.assert_close(m.mu.norm(dim=1), torch.ones(1, 64), atol=1e-5, rtol=0)
    assert "mu" in dict(m.named_buffers()) and "mu" in m.state_dict()
    assert all(p is not m.mu for p in m.parameters()) and not m.mu.requires_grad
    assert sum(p.numel() for p in m.parameters()) == (16 * 8 + 8) + 8 * 16 + 2 * 16


def test_eval_does_not_change_the_bases() -> None:
    m = _unit(8, 8, 5, 3).eval()
    before = m.mu.clone()
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        a, b = m(x), m(x)
    assert torch.equal(m.mu, before)
    assert torch.equal(a, b)


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_training_moves_the_bases_by_the_momentum_rule(stop_gradient: bool) -> None:
    m = _unit(8, 4, 5, 3, stop_gradient).train()
    before = m.mu.clone()
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        _, mu_t = _em(conv1x1(x, m.conv_in).flatten(2), before[0], 3)
    expected = 0.9 * before + 0.1 * mu_t.mean(0, keepdim=True)  # eq. 15, mu^(T) averaged over the batch
    y = m(x)
    assert (m.mu - expected).abs().max().item() <= 1e-6
    assert not torch.equal(m.mu, before)
    y.square().mean().backward()  # the in-place update does not break the backward pass, nor gets a gradient
    assert m.mu.grad is None and m.conv_out.weight.grad is not None


def test_stop_gradient_cuts_the_em_iterations_only() -> None:
    x = torch.randn(2, 8, 4, 6, dtype=torch.float64)
    grads, outs = {}, {}
    for stop in (False, True):
        m = _unit(8, 8, 4, 3, stop).eval()
        outs[stop] = m(x)
        outs[stop].sum().backward()
        grads[stop] = m.conv_in.weight.grad
    torch.testing.assert_close(outs[False], outs[True])
    assert grads[False] is not None and grads[False].abs().sum() > 0
    assert grads[True] is None  # as in the authors' code: the input conv gets no gradient


def test_reduction_must_divide_the_channels() -> None:
    text = (
        "name: ema\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: emanet, reduction: 5}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "ema.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("ema.yaml:") and "stages.0.blocks.1.reduction:" in line, line
    assert "the block's channels=32 must be divisible by reduction=5" in line, line
