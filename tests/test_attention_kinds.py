"""Attention attached to blocks: SE, ECA and CBAM against float64 references written from their papers'
equations (explicit formulas on the modules' weights, no module of the implementation reused), where
each sits in each block, searchable shorthand, and SE-ResNet-50's published parameter count."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import archdsl
from archdsl.attention.eca import eca_kernel
from archdsl.nn.cbam import ConvBlockAttention
from archdsl.nn.eca import EfficientChannelAttention
from archdsl.nn.se import SqueezeExcite
from archdsl.spec.load import spec_from_text

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(2, 8, 5, 7), (3, 16, 4, 4), (1, 12, 6, 3)]


def _se_ref(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Hu et al. eq. 2-4 with ReLU."""
    z = x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.clamp(z @ w1.T + b1, min=0) @ w2.T + b2)
    return x * s[:, :, None, None]


def _eca_ref(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Wang et al. eq. 9: w_i = sigmoid(sum_{j=1..k} a_j y_{i+j-(k+1)/2}) on y = GAP(x), zero outside [0, C)."""
    b, c = x.shape[:2]
    k = w.numel()
    y = x.mean(dim=(2, 3))
    gate = torch.zeros(b, c, dtype=x.dtype)
    for i in range(c):
        for j in range(k):
            src = i + j - (k - 1) // 2
            if 0 <= src < c:
                gate[:, i] += w[j] * y[:, src]
    return x * torch.sigmoid(gate)[:, :, None, None]


def _cbam_ref(x: torch.Tensor, m: ConvBlockAttention) -> torch.Tensor:
    """Woo et al. eq. 2 and 3, with the authors' BatchNorm after the spatial conv (eval statistics)."""
    w1, b1 = m.fc1.weight[:, :, 0, 0], m.fc1.bias
    w2, b2 = m.fc2.weight[:, :, 0, 0], m.fc2.bias

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return torch.clamp(v @ w1.T + b1, min=0) @ w2.T + b2

    avg = x.mean(dim=(2, 3))
    mx = x.flatten(2).max(dim=2).values
    x1 = x * torch.sigmoid(mlp(avg) + mlp(mx))[:, :, None, None]
    pooled = torch.stack([x1.mean(dim=1), x1.max(dim=1).values], dim=1)  # (B, 2, H, W)
    k = m.spatial.kernel_size[0]
    p = (k - 1) // 2
    padded = F.pad(pooled, (p, p, p, p))
    b, _, h, w = pooled.shape
    conv = torch.zeros(b, h, w, dtype=x.dtype)
    weight = m.spatial.weight[0]  # (2, k, k)
    for ch in range(2):
        for u in range(k):
            for v in range(k):
                conv += weight[ch, u, v] * padded[:, ch, u : u + h, v : v + w]
    bn = m.spatial_norm
    conv = (conv - bn.running_mean[0]) / torch.sqrt(bn.running_var[0] + bn.eps) * bn.weight[0] + bn.bias[0]
    return x1 * torch.sigmoid(conv)[:, None]


@pytest.mark.parametrize("shape", SHAPES)
def test_se_matches_the_paper(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    m = SqueezeExcite(shape[1], 3, "relu").double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    ref = _se_ref(x, m.reduce.weight[:, :, 0, 0], m.reduce.bias, m.expand.weight[:, :, 0, 0], m.expand.bias)
    assert (m(x) - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_eca_matches_the_paper(shape: tuple[int, int, int, int], k: int) -> None:
    torch.manual_seed(1)
    m = EfficientChannelAttention(k).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    assert (m(x) - _eca_ref(x, m.conv.weight.flatten())).abs().max().item() <= 1e-6


def test_eca_adaptive_kernel_is_eq_12() -> None:
    # |log2(C)/2 + 1/2|_odd: C=64 -> 3.5 -> 3; C=256 -> 4.5 -> 4 -> 5; C=512 -> 5; C=2048 -> 6 -> 7
    assert [eca_kernel(c) for c in (16, 64, 256, 512, 2048)] == [3, 3, 5, 5, 7]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [3, 7])
def test_cbam_matches_the_paper(shape: tuple[int, int, int, int], k: int) -> None:
    torch.manual_seed(2)
    m = ConvBlockAttention(shape[1], max(1, shape[1] // 4), k).double()
    with torch.no_grad():  # non-trivial BN statistics
        m.spatial_norm.running_mean.fill_(0.3)
        m.spatial_norm.running_var.fill_(2.0)
        m.spatial_norm.weight.fill_(1.5)
        m.spatial_norm.bias.fill_(-0.2)
    m.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    assert (m(x) - _cbam_ref(x, m)).abs().max().item() <= 1e-6


def _resnet50(attention: object) -> dict[str, object]:
    data = yaml.safe_load((ROOT / "specs" / "resnet50.yaml").read_text())
    for stage in data["stages"]:
        for block in stage["blocks"]:
            block["attention"] = copy.deepcopy(attention)
    return data


def test_se_resnet50_has_the_published_parameter_count() -> None:
    """SE-ResNet-50, reduction 16, counted as torchvision/timm count it: 28,088,024 at 1000 classes."""
    spec = spec_from_text(yaml.safe_dump(_resnet50({"type": "se", "reduction": 16})))
    plan = archdsl.plan_model(spec)
    assert plan.params == 28_088_024
    meta = archdsl.build_model(spec, device="meta")
    assert sum(p.numel() for p in meta.parameters()) == 28_088_024
    attention = [c for n in plan.nodes() for c in n.children if c.role == "attention"]
    assert len(attention) == 16 and {c.type for c in attention} == {"se"}


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ("{type: bottleneck, attention: cbam}", "bottleneck"),
        ("{type: basic, attention: eca}", "basic"),
        ("{type: mbconv, attention: se}", "mbconv"),
    ],
)
def test_attention_sits_where_the_block_documents(block: str, where: str) -> None:
    """Bottleneck and basic: on the residual branch after the last BN, before the sum; MBConv: after the
    depthwise conv. Checked by recording what the attention module receives and where its output goes."""
    text = f"""
name: where
input: {{channels: 3, size: 16}}
stem: {{type: conv, channels: 16}}
stages: [{{channels: 32, stride: 2, blocks: [{block}]}}]
head: {{type: classifier, num_classes: 4}}
"""
    torch.manual_seed(3)
    model = archdsl.build_model(spec_from_text(text)).eval()
    blk = model.stages[0][0]
    seen: dict[str, torch.Tensor] = {}
    blk.attention.register_forward_hook(
        lambda m, i, o: seen.update(inp=i[0], out=o)
    ) if where != "mbconv" else blk.se.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        y = blk(x)
        if where == "bottleneck":
            before = blk.expand(blk.mixer_act(blk.mixer_norm(blk.mixer(blk.reduce(x)))))
            after = torch.relu(blk.shortcut(x) + seen["out"])
        elif where == "basic":
            before = blk.conv2(blk.conv1(x))
            after = torch.relu(blk.shortcut(x) + seen["out"])
        else:
            before = blk.depthwise(blk.expand(x))
            after = blk.project(seen["out"])
    torch.testing.assert_close(seen["inp"], before)
    torch.testing.assert_close(y, after)


def test_attention_is_searchable_with_shorthand_choices(tmp_path: object) -> None:
    from optuna.trial import FixedTrial

    from archdsl.search.space.load import search_from_text
    from archdsl.search.space.resolution import resolve

    text = """
base: ../specs/resnet50.yaml
objectives: [{metric: params}]
params:
  stages.*.blocks.*.attention: {choice: [none, se, eca, cbam]}
"""
    space = search_from_text(text, "attn.yaml", ROOT / "search")
    counts = {}
    for choice in ("none", "se", "eca", "cbam"):
        spec = resolve(space, FixedTrial({"stages.*.blocks.*.attention": choice}))
        counts[choice] = archdsl.plan_model(spec).params
    assert counts["none"] == 25_557_032 and counts["se"] == 28_088_024
    assert counts["eca"] - counts["none"] == sum(eca_kernel(c) for c in [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3)
    assert counts["cbam"] > counts["se"]  # the same MLP as SE plus a 7x7 spatial conv and its BN, per block


def test_mbconv_keeps_its_efficientnet_se_unless_told_otherwise() -> None:
    base = """
name: mb
input: {{channels: 3, size: 16}}
stem: {{type: conv, channels: 16}}
stages: [{{channels: 24, stride: 2, blocks: [{{type: mbconv, expand_ratio: 6{extra}}}]}}]
head: {{type: classifier, num_classes: 4}}
"""
    default = archdsl.build_model(spec_from_text(base.format(extra=""))).stages[0][0]
    assert isinstance(default.se, SqueezeExcite) and default.se.reduce.out_channels == math.floor(16 * 0.25)
    none = archdsl.build_model(spec_from_text(base.format(extra=", attention: none"))).stages[0][0]
    assert isinstance(none.se, torch.nn.Identity)
    eca = archdsl.build_model(spec_from_text(base.format(extra=", attention: eca"))).stages[0][0]
    assert isinstance(eca.se, EfficientChannelAttention)
