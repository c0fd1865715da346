"""CARAFE against Wang et al. 2019 section 3 (kernel prediction, eq. 4 reassembly), written per output pixel in
float64: the encoder conv as a sum over its window, the pixel shuffle by its index formula, the softmax as
exp / sum, and the reassembly as a loop over output positions and kernel offsets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archdsl.nn.carafe import CARAFE
from tests.context.common import SHAPES, check, conv1x1, conv_same


def _reference(x: torch.Tensor, m: CARAFE) -> torch.Tensor:
    b, c, h, w = x.shape
    s, k = m.scale, m.up_kernel
    r = k // 2
    enc = conv_same(conv1x1(x, m.compressor), m.encoder)  # (B, s^2 k^2, H, W)
    kernels = torch.empty(b, k * k, s * h, s * w, dtype=x.dtype)
    for n in range(k * k):  # pixel shuffle: channel n*s^2 + dy*s + dx -> kernel n of pixel (s*i + dy, s*j + dx)
        for dy in range(s):
            for dx in range(s):
                kernels[:, n, dy::s, dx::s] = enc[:, n * s * s + dy * s + dx]
    e = torch.exp(kernels - kernels.amax(dim=1, keepdim=True))
    kernels = e / e.sum(dim=1, keepdim=True)  # softmax over the k^2 elements of each pixel's kernel
    out = torch.zeros(b, c, s * h, s * w, dtype=x.dtype)
    for io in range(s * h):
        for jo in range(s * w):
            i, j = io // s, jo // s  # the source location
            for dn in range(-r, r + 1):
                for dm in range(-r, r + 1):
                    if 0 <= i + dn < h and 0 <= j + dm < w:  # neighbours outside the map are zero
                        weight = kernels[:, (dn + r) * k + (dm + r), io, jo]  # (B,)
                        out[:, :, io, jo] += weight[:, None] * x[:, :, i + dn, j + dm]
    return conv1x1(out, m.project) if isinstance(m.project, nn.Conv2d) else out


def _randomised(c: int, out: int, scale: int, k_enc: int, k_up: int) -> CARAFE:
    m = CARAFE(
        in_channels=c, out_channels=out, scale=scale, compressed_channels=4, encoder_kernel=k_enc, up_kernel=k_up
    ).double()
    with torch.no_grad():  # kernels far from uniform, so that the prediction matters
        m.encoder.weight.normal_(0.0, 0.5)
        m.encoder.bias.normal_(0.0, 0.5)
    return m.eval()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize(("k_enc", "k_up"), [(3, 5), (1, 3)])
@pytest.mark.parametrize("project", [False, True])
def test_carafe_matches_the_paper(
    shape: tuple[int, int, int, int], scale: int, k_enc: int, k_up: int, project: bool
) -> None:
    torch.manual_seed(0)
    c = shape[1]
    m = _randomised(c, c + 4 if project else c, scale, k_enc, k_up)
    x = torch.randn(*shape, dtype=torch.float64)
    check(m, _reference(x, m), x)


def test_zero_encoder_gives_the_mean_of_each_neighbourhood() -> None:
    """With an all-zero content encoder every kernel is uniform: each output pixel is the sum of its source
    pixel's 3x3 neighbourhood (zero outside) over 9."""
    m = CARAFE(in_channels=2, out_channels=2, scale=2, compressed_channels=3, encoder_kernel=3, up_kernel=3).double()
    nn.init.zeros_(m.encoder.weight)
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    mean = sum(padded[:, :, u : u + 3, v : v + 4] for u in range(3) for v in range(3)) / 9
    expected = mean.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    check(m.eval(), expected, x)


def test_channels_last_and_meta() -> None:
    torch.manual_seed(0)
    m = _randomised(8, 12, 2, 3, 5).float()
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(m(x.to(memory_format=torch.channels_last)), m(x), rtol=1e-5, atol=1e-5)
    meta = CARAFE(in_channels=8, out_channels=12, scale=4, compressed_channels=4, encoder_kernel=3, up_kernel=5)
    assert meta.to("meta")(torch.empty(3, 8, 5, 7, device="meta")).shape == (3, 12, 20, 28)
