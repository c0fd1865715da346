"""LatentGNN against Zhang et al. 2019 (visible -> latent, latent -> latent, latent -> visible
with the same kernel, per kernel of the mixture), written per latent node and per kernel in float64."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.latentgnn import LatentGNN
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, conv1x1, randomise_norms


def _l2(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t / max(||t||_2, 1e-12)`` along ``dim``."""
    return t / torch.sqrt((t * t).sum(dim, keepdim=True)).clamp_min(1e-12)


def _reference(x: torch.Tensor, m: LatentGNN, kernels: int, latent: int) -> torch.Tensor:
    b, _, h, w = x.shape
    n = h * w
    feat = _l2(bn_eval(conv1x1(x, m.reduce), m.reduce_norm), 1).reshape(b, -1, n)  # (B, C', N): x_i
    edges = torch.relu(bn_eval(conv1x1(feat.reshape(b, -1, h, w), m.psi), m.psi_norm)).reshape(b, -1, n)
    outs = []
    for k in range(kernels):
        psi = _l2(edges[:, k * latent : (k + 1) * latent], 1)  # (B, d, N): psi(x_i, theta_k) of kernel k
        # step 1: z_k = sum_i psi_k(x_i) x_i
        z = torch.stack([(psi[:, j : j + 1, :] * feat).sum(2) for j in range(latent)], dim=1)  # (B, d, C')
        # step 2: z~_k = sum_j softmax_j(zn_k . zn_j) z_j
        zn = _l2(z, 2)
        z_new = torch.zeros_like(z)
        for j in range(latent):
            e = torch.exp((zn[:, j : j + 1, :] * zn).sum(2))  # (B, d)
            z_new[:, j] = ((e / e.sum(1, keepdim=True))[:, :, None] * z).sum(1)
        # step 3: x~_i = sum_k psi_k(x_i) z~_k
        outs.append(torch.einsum("bdn,bdc->bcn", psi, z_new))
    y = torch.cat(outs, dim=1).reshape(b, -1, h, w)
    return x + m.gamma * bn_eval(conv1x1(y, m.up), m.up_norm)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("inner", "latent", "kernels"), [(4, 5, 1), (2, 3, 2), (3, 7, 3)])
def test_latentgnn_matches_the_paper(shape: tuple[int, int, int, int], inner: int, latent: int, kernels: int) -> None:
    torch.manual_seed(0)
    m = LatentGNN(shape[1], inner, latent, kernels, zero_init=False).double()
    with torch.no_grad():
        m.gamma.fill_(0.7)
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m, kernels, latent), x)


def test_zero_init_starts_as_identity() -> None:
    m = LatentGNN(8, 2, 4, 2, zero_init=True).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def test_one_latent_node_gives_every_position_the_same_context() -> None:
    """With d = 1 the l2-normalised kernel is 1 wherever it is non-zero: every such position gets the one
    latent node, the sum of all visible features (steps 1 and 3 share the kernel)."""
    torch.manual_seed(0)
    m = LatentGNN(8, 4, 1, 1, zero_init=False).double().eval()
    with torch.no_grad():
        m.psi.weight.zero_()
        m.psi_norm.bias.fill_(1.0)  # psi = ReLU(1) > 0 everywhere
        m.up.weight.copy_(torch.eye(8, 4, dtype=torch.float64)[:, :, None, None])
        x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
        y = m(x) - x
        feat = m.reduce_norm(m.reduce(x))
        feat = feat / feat.norm(dim=1, keepdim=True)
        total = feat.sum(dim=(2, 3), keepdim=True).expand(2, 4, 5, 3)
        expected = bn_eval(torch.cat([total, torch.zeros_like(total)], dim=1), m.up_norm)
    torch.testing.assert_close(y, expected)


def test_a_reduction_that_leaves_no_channels_is_located() -> None:
    text = (
        "name: lg\ninput: {channels: 3, size: 16}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, blocks: [{type: bottleneck, width: 8}, {type: latentgnn, reduction: 64}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "lg.yaml"))
    (problem,) = err.value.problems
    assert "stages.0.blocks.1.reduction: reduction=64 leaves no channels of 32" in str(problem), str(problem)
