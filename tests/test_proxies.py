"""Zero-cost proxies: each against a value computed by hand (or by plain numpy) on a tiny network, and the
registry, the batch and ``score`` on real candidates of the digits search."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from optuna.trial import FixedTrial
from torch import nn

from archdsl.errors import ArchDSLError
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.proxies import PROXIES, ProxyBatch, ProxyInputs, UnknownProxy, load_batch, proxy_names, score
from archdsl.search.proxies.naswot import naswot
from archdsl.search.proxies.synflow import synflow
from archdsl.search.space import load_search, resolve
from archdsl.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
DIGITS_PARAMS = {
    "conv_stages": 1,
    "stem.kernel_size": 3,
    "stages.*.blocks.*.mixer.kernel_size": 3,
    "stages.*.blocks.*.mixer.halo_size": 1,
    "stages.*.blocks.*.mixer.block_size": 4,
    "stages.*.blocks.*.mixer.num_heads": 2,
    "stages.1.blocks.0.repeat": 1,
    "stages.2.channels": 96,
    "train.optimizer.lr": 3e-3,
}


def _linear(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


def _inputs(model: nn.Module, x: list[list[float]], y: list[int] | None = None) -> ProxyInputs:
    images = torch.tensor(x, dtype=torch.float32)
    labels = torch.tensor(y if y is not None else [0] * len(x))
    return ProxyInputs(None, ProxyBatch(images, labels), initial=model)


@pytest.fixture(scope="module")
def digits() -> PlannedSpec:
    space = load_search(ROOT / "search" / "digits.yaml")
    return plan_spec(resolve(space, FixedTrial(DIGITS_PARAMS)))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_name() -> None:
    assert proxy_names() == ["flops", "grad_norm", "naswot", "params", "snip", "synflow"]
    assert set(PROXIES) == set(proxy_names())
    assert [n for n in proxy_names() if not PROXIES[n].needs_model] == ["flops", "params"]
    batch = ProxyBatch(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))
    with pytest.raises(UnknownProxy) as err:
        score(None, ["naswot", "synflw"], batch)  # type: ignore[arg-type]  # refused before the plan is read
    assert isinstance(err.value, ArchDSLError) and not isinstance(err.value, KeyError)
    assert err.value.exit_code == 2
    (problem,) = err.value.problems
    assert str(problem).startswith("proxy: unknown proxy 'synflw' (did you mean 'synflow'?); known: flops, ")


# ------------------------------------------------------------------------------------------------- naswot


def test_naswot_by_hand() -> None:
    # layer 1: W1 x with W1 = [[1, 0], [0, 1], [1, 1]]; layer 2: the identity (codes unchanged); then a head
    model = nn.Sequential(
        _linear([[1, 0], [0, 1], [1, 1]], [0, 0, 0]),
        nn.ReLU(),
        _linear([[1, 0, 0], [0, 1, 0], [0, 0, 1]], [0, 0, 0]),
        nn.ReLU(),
        _linear([[1, -1, 2], [0, 1, -1]], [0.5, 0]),
    )
    # codes per input: (1,1) -> 111, (1,-1) -> 100 (1 + -1 = 0 is not active), (-1,1) -> 010, (-1,-1) -> 000
    # per layer K = N_A - Hamming = [[3,1,1,0],[1,3,1,2],[1,1,3,2],[0,2,2,3]] (det 12); two equal layers: 2K
    value = naswot(_inputs(model, [[1, 1], [1, -1], [-1, 1], [-1, -1]]))
    assert value == pytest.approx(math.log(16 * 12), abs=1e-9)


def test_naswot_against_numpy_on_random_weights() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.GELU(), nn.Linear(6, 3))
    x = torch.randn(4, 5)
    w = [m.weight.detach().double().numpy() for m in model if isinstance(m, nn.Linear)]
    b = [m.bias.detach().double().numpy() for m in model if isinstance(m, nn.Linear)]
    xn = x.double().numpy()
    a1 = xn @ w[0].T + b[0]
    h1 = np.maximum(a1, 0)
    a2 = h1 @ w[1].T + b[1]  # GELU is positive exactly where its input is
    k = np.zeros((4, 4))
    for a in (a1, a2):
        c = (a > 0).astype(float)
        k += c @ c.T + (1 - c) @ (1 - c).T
    expected = np.linalg.slogdet(k)[1]
    assert naswot(_inputs(model, x.tolist())) == pytest.approx(expected, rel=1e-9)


def test_naswot_equal_codes_are_singular() -> None:
    model = nn.Sequential(_linear([[1, 0], [0, 1]]), nn.ReLU(), _linear([[1, 1]]))
    assert naswot(_inputs(model, [[1, 2], [3, 4], [-1, 0]])) == -math.inf  # the first two share code 11


# ------------------------------------------------------------------------------------------------ synflow


def test_synflow_closed_form_of_two_linear_layers() -> None:
    w1 = [[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]]
    w2 = [[2.0, -1.0, 0.5]]
    model = nn.Sequential(_linear(w1), _linear(w2))
    # R = 1^T |W2| |W1| 1 on the all-ones input; dR/dW1_ij = |W2|_i, dR/dW2_i = (|W1| 1)_i: each layer's
    # sum |theta * dR/dtheta| is R, so S = 2 R
    r = (np.abs(w2) @ np.abs(w1) @ np.ones(2)).item()  # 2 * 3 + 1 * 3.5 + 0.5 * 1.25 = 10.125
    assert r == 10.125
    before = [p.detach().clone() for p in model.parameters()]
    assert synflow(_inputs(model, [[5.0, -7.0], [0.1, 0.2]])) == pytest.approx(math.log(2 * r), rel=1e-12)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))  # a copy was changed
    assert all(p.grad is None for p in model.parameters())


def test_synflow_bypasses_batchnorm_and_relu_passes_positive_flow() -> None:
    w1, w2 = [[1.0, -2.0], [0.5, 3.0]], [[2.0, -1.0]]
    plain = nn.Sequential(_linear(w1), _linear(w2))
    bn = nn.BatchNorm1d(2)
    with_bn = nn.Sequential(_linear(w1), bn, nn.ReLU(), _linear(w2))
    with torch.no_grad():
        bn.weight.zero_()  # a zero-initialised BN (as the last BN of a residual branch) is bypassed
    x = [[1.0, 2.0], [3.0, -4.0]]
    expected = math.log(2 * (np.abs(w2) @ np.abs(w1) @ np.ones(2)).item())
    assert synflow(_inputs(plain, x)) == pytest.approx(expected, rel=1e-12)
    assert synflow(_inputs(with_bn, x)) == pytest.approx(expected, rel=1e-12)


# -------------------------------------------------------------------------------------- grad_norm and snip


def _hand_gradients(
    w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray, y: np.ndarray
) -> list[np.ndarray]:
    """Backpropagation of the mean cross-entropy through Linear -> ReLU -> Linear, written out."""
    a = x @ w1.T + b1
    h = np.maximum(a, 0)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(z.shape[1])[y]) / len(x)
    da = (dz @ w2) * (a > 0)
    return [da.T @ x, da.sum(0), dz.T @ h, dz.sum(0)]


def test_grad_norm_and_snip_against_hand_backprop() -> None:
    w1 = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 1.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    w2 = np.array([[1.0, -0.5, 0.25], [-1.0, 2.0, 0.5]])
    b2 = np.array([0.05, -0.05])
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7], [2.0, -1.0]])
    y = np.array([0, 1, 1, 0])
    model = nn.Sequential(_linear(w1.tolist(), b1.tolist()), nn.ReLU(), _linear(w2.tolist(), b2.tolist()))
    grads = _hand_gradients(w1, b1, w2, b2, x, y)
    params = [w1, b1, w2, b2]
    inputs = _inputs(model, x.tolist(), y.tolist())
    assert PROXIES["grad_norm"].compute(inputs) == pytest.approx(sum(np.linalg.norm(g) for g in grads), rel=1e-5)
    snip = sum(np.abs(p * g).sum() for p, g in zip(params, grads, strict=True))
    assert PROXIES["snip"].compute(inputs) == pytest.approx(snip, rel=1e-5)
    assert all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------------------------------- batch


def test_load_batch_is_real_digits_training_images(digits: PlannedSpec) -> None:
    from archdsl.train.data.digits import load_digits_splits

    batch = load_batch(digits.spec, seed=0)
    assert batch.images.shape == (64, 1, 16, 16) and batch.images.dtype == torch.float32
    assert batch.labels.shape == (64,) and batch.labels.dtype == torch.int64
    assert set(batch.labels.tolist()) <= set(range(10)) and len(set(batch.labels.tolist())) >= 8
    (train, _, _), (train_labels, _, _) = load_digits_splits(1, 16)
    # every image is one of the training split's, as evaluation prepares it (standardised, no shift)
    distance = torch.cdist(batch.images.flatten(1), train.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
    nearest = distance.min(1)
    assert float(nearest.values.max()) < 1e-4
    assert torch.equal(train_labels[nearest.indices], batch.labels)
    assert len(set(nearest.indices.tolist())) == 64  # drawn without replacement
    assert load_batch(digits.spec, seed=0) is batch  # cached
    other = load_batch(digits.spec, seed=1, size=16)
    assert other.images.shape == (16, 1, 16, 16) and not torch.equal(other.images, batch.images[:16])


def test_load_batch_default_size_follows_the_spec() -> None:
    spec = load_spec(ROOT / "specs" / "digits_search_base.yaml")
    small = spec.model_copy(update={"train": spec.train.model_copy(update={"batch_size": 20})})
    assert load_batch(small, seed=0).images.shape[0] == 20
    data = spec.model_dump(mode="json")
    data["train"]["data"] = {"name": "synthetic", "num_samples": 32}
    synthetic = type(spec).model_validate(data)
    batch = load_batch(synthetic, seed=0, size=100)  # capped at the split's 32 images
    assert batch.images.shape == (32, 1, 16, 16)


# --------------------------------------------------------------------------------------------------- score


def test_score_on_a_digits_candidate(digits: PlannedSpec) -> None:
    batch = load_batch(digits.spec, seed=0)
    rng = torch.get_rng_state()
    with torch.no_grad():
        got = score(digits, proxy_names(), batch, seed=0)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert torch.equal(torch.get_rng_state(), rng)
    assert not batch.images.requires_grad and batch.images.grad is None
    assert set(got) == set(proxy_names()) and all(math.isfinite(v) for v in got.values())
    assert got["params"] == digits.plan.params and got["flops"] == digits.plan.flops
    assert got["grad_norm"] > 0 and got["snip"] > 0
    # the batch has 64 images of distinct codes: ln det K is far above ln det of a rank-deficient K
    assert got["naswot"] > 100
    again = score(digits, ["synflow", "naswot", "snip"], batch, seed=0)  # any order, any subset: same values
    assert again == {k: got[k] for k in again}
    other = score(digits, ["synflow", "naswot"], batch, seed=1)
    assert other["synflow"] != got["synflow"] and other["naswot"] != got["naswot"]


def test_score_ranks_a_wider_model_above_by_params(digits: PlannedSpec) -> None:
    space = load_search(ROOT / "search" / "digits.yaml")
    wide = plan_spec(resolve(space, FixedTrial({**DIGITS_PARAMS, "stages.2.channels": 192})))  # type: ignore[arg-type]
    batch = load_batch(digits.spec, seed=0)
    assert score(wide, ["params"], batch)["params"] > score(digits, ["params"], batch)["params"]
