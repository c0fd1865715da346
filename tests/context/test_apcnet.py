"""APCNet block against He et al. 2019 (the adaptive context module, section 3.3), written per pixel in float64."""

from __future__ import annotations

import math

import pytest
import torch

import archdsl
from archdsl.errors import ShapeError
from archdsl.nn.apcnet import AdaptivePyramidContext
from archdsl.spec.load import spec_from_text
from tests.context.common import SHAPES, bn_eval, check, randomise_norms


def _avgpool(x: torch.Tensor, s: int) -> torch.Tensor:
    """Adaptive average pooling to s x s: region (a, b) covers rows floor(aH/s)..ceil((a+1)H/s), columns alike."""
    b, c, h, w = x.shape
    out = torch.empty(b, c, s, s, dtype=x.dtype)
    for a in range(s):
        r0, r1 = (a * h) // s, math.ceil((a + 1) * h / s)
        for d in range(s):
            c0, c1 = (d * w) // s, math.ceil((d + 1) * w / s)
            out[:, :, a, d] = x[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
    return out


def _conv_bn_relu(x: torch.Tensor, seq: torch.nn.Module) -> torch.Tensor:
    """``ReLU(BN(conv_k(x)))``, zero padding k // 2, as a sum over the k x k kernel offsets."""
    conv, bn = seq[0], seq[1]
    k = conv.weight.shape[-1]
    p = k // 2
    b, _, h, w = x.shape
    xp = torch.zeros(b, x.shape[1], h + 2 * p, w + 2 * p, dtype=x.dtype)
    xp[:, :, p : p + h, p : p + w] = x
    y = torch.zeros(b, conv.weight.shape[0], h, w, dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            y = y + torch.einsum("oc,bchw->bohw", conv.weight[:, :, u, v], xp[:, :, u : u + h, v : v + w])
    return torch.relu(bn_eval(y, bn))


def _acm(x_in: torch.Tensor, acm: torch.nn.Module) -> torch.Tensor:
    b, _, h, w = x_in.shape
    s = acm.scale
    x = _conv_bn_relu(x_in, acm.reduce)  # (B, r, H, W)
    y = _conv_bn_relu(_avgpool(x_in, s), acm.pooled_reduce).reshape(b, -1, s * s)  # (B, r, s^2)
    g = _conv_bn_relu(x.mean(dim=(2, 3), keepdim=True), acm.global_info)  # (B, r, 1, 1)
    wa, ba = acm.affinity.weight[:, :, 0, 0], acm.affinity.bias
    z = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            e = x[:, :, i, j] + g[:, :, 0, 0]  # x_i + g(x)
            alpha = torch.sigmoid(e @ wa.t() + ba)  # (B, s^2): affinity of pixel (i, j) to the regions
            z[:, :, i, j] = (alpha[:, None, :] * y).sum(2)  # sum over regions of alpha * y
    return _conv_bn_relu(torch.relu(_conv_bn_relu(z, acm.residual) + x), acm.fusion)


def _reference(x: torch.Tensor, m: AdaptivePyramidContext) -> torch.Tensor:
    return _conv_bn_relu(torch.cat([x] + [_acm(x, acm) for acm in m.acms], dim=1), m.fuse)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scales", [[1, 2, 3], [2], [1, 3]])
@pytest.mark.parametrize("fusion_kernel", [1, 3])
def test_apcnet_matches_the_paper(shape: tuple[int, int, int, int], scales: list[int], fusion_kernel: int) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = AdaptivePyramidContext(c, c // 4, scales, fusion_kernel).double()
    randomise_norms(m)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_paper_scales_and_parameter_count() -> None:
    m = AdaptivePyramidContext(32, 8, [1, 2, 3, 6], 3)
    assert [a.scale for a in m.acms] == [1, 2, 3, 6]
    acm = sum(32 * 8 + 16 + 32 * 8 + 16 + 64 + 16 + (8 * s * s + s * s) + 64 + 16 + 64 + 16 for s in (1, 2, 3, 6))
    assert sum(p.numel() for p in m.parameters()) == acm + (32 + 4 * 8) * 32 * 9 + 64


def test_scale_larger_than_the_map_is_refused() -> None:
    text = (
        "name: apc\ninput: {channels: 3, size: 8}\nstem: {type: conv, channels: 16}\n"
        "stages: [{channels: 32, stride: 2, blocks: [{type: bottleneck, width: 8}, {type: apcnet, scales: [1, 6]}]}]\n"
        "head: {type: classifier, num_classes: 4}\n"
    )
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "apc.yaml"))
    (problem,) = err.value.problems
    line = str(problem)
    assert line.startswith("apc.yaml:") and "stages.0.blocks.1.scales:" in line, line
    assert "scale 6 pools a 4x4 feature map" in line and "use scales of at most 4" in line, line
