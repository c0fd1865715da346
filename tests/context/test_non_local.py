"""Non-local block against Wang et al. 2018 eq. 1, 6 and section 3.2, written per position pair in float64."""

from __future__ import annotations

import pytest
import torch

from archdsl.nn.non_local import NONLOCAL_MODES, NonLocal
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _maxpool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool, stride 2, a partial window at an odd border kept (ceil mode)."""
    b, c, h, w = x.shape
    out = torch.empty(b, c, (h + 1) // 2, (w + 1) // 2, dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].amax(dim=(2, 3))
    return out


def _reference(x: torch.Tensor, m: NonLocal, subsample: bool) -> torch.Tensor:
    b, _, h, w = x.shape
    pool = _maxpool2 if subsample else (lambda t: t)
    g = pool(conv1x1(x, m.g)).flatten(2)  # (B, Ci, Nj)
    if m.mode == "gaussian":
        theta, phi = x.flatten(2), pool(x).flatten(2)
    else:
        theta, phi = conv1x1(x, m.theta).flatten(2), pool(conv1x1(x, m.phi)).flatten(2)
    n, nj = theta.shape[2], phi.shape[2]
    y = torch.zeros(b, g.shape[1], n, dtype=x.dtype)
    for i in range(n):
        if m.mode in ("embedded_gaussian", "gaussian"):
            e = torch.exp((theta[:, :, i : i + 1] * phi).sum(1))  # (B, Nj): exp(theta_i . phi_j)
            f, norm = e, e.sum(1, keepdim=True)
        elif m.mode == "dot_product":
            f, norm = (theta[:, :, i : i + 1] * phi).sum(1), nj
        else:  # concatenation: ReLU(w_f^T [theta_i; phi_j])
            ci = theta.shape[1]
            pair = torch.cat([theta[:, :, i : i + 1].expand(-1, -1, nj), phi], dim=1)  # (B, 2Ci, Nj)
            f, norm = torch.relu((m.w_f.view(1, 2 * ci, 1) * pair).sum(1)), nj
        y[:, :, i] = ((f / norm)[:, None, :] * g).sum(2)
    z = conv1x1(y.reshape(b, -1, h, w), m.out)
    return x + bn_eval(z, m.norm)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", NONLOCAL_MODES)
@pytest.mark.parametrize("subsample", [False, True])
def test_non_local_matches_the_paper(shape: tuple[int, int, int, int], mode: str, subsample: bool) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = NonLocal(c, c // 2, mode, subsample, zero_init=False).double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, subsample), x)


def test_zero_init_starts_as_identity() -> None:
    m = NonLocal(8, 4, "embedded_gaussian", False, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)
