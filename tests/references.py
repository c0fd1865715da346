"""Float64 references of the layers several test files check against: inference BN, conv, conv + BN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["bn_ref", "conv_bn_ref", "conv_ref"]


def bn_ref(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Inference BN: (x - mu) / sqrt(var + eps) * gamma + beta, per channel."""
    c = (None, slice(None), None, None)
    return (x - bn.running_mean[c]) / torch.sqrt(bn.running_var[c] + bn.eps) * bn.weight[c] + bn.bias[c]


def conv_ref(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, groups=conv.groups)


def conv_bn_ref(x: torch.Tensor, seq: nn.Sequential, act: bool) -> torch.Tensor:
    y = bn_ref(conv_ref(x, seq[0]), seq[1])
    return torch.relu(y) if act else y
