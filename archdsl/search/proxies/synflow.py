"""``synflow``: synaptic flow at initialisation (Tanaka et al., NeurIPS 2020, arXiv:2006.05467), as the
zero-cost proxy of Abdelfattah et al. (ICLR 2021, arXiv:2101.08134).

On a copy of the seeded model: every normalisation layer of the BatchNorm family is bypassed (an identity, as
the reference implementation's ``bn=False`` copy), every parameter and buffer is replaced by its absolute value,
the model runs in float64 and in evaluation mode (no dropout or drop-path), on one all-ones image of the batch's
shape. With ``R`` the sum of the outputs, the synaptic flow is ``S = sum over parameters |theta * dR/dtheta|``.

The score is ``ln S`` (the natural logarithm; S grows as a product over the layers, so a deep candidate's S
is astronomically large): monotone in ``S``, so it ranks as ``S`` does. ``-inf`` when ``S == 0`` (no path
carries any signal), ``+inf`` when ``S`` overflows float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.registry import Proxy, register

__all__ = ["bypass_batchnorm", "synaptic_flow", "synflow"]


def bypass_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``model`` by an identity, in place; returns ``model``."""
    for name, child in list(model.named_children()):
        if isinstance(child, _BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            bypass_batchnorm(child)
    return model


def synaptic_flow(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> float:
    """``S`` of ``model`` (changed in place: absolute float64 weights, evaluation mode) for one all-ones input of
    ``shape`` (without the batch dimension)."""
    model = model.double().eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.ones((1, *shape), dtype=torch.float64, device=device)
    with torch.enable_grad():
        flow = model(x).sum()
        grads = torch.autograd.grad(flow, params, allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                total += (p * g).abs().sum()
    return float(total)


def synflow(inputs: ProxyInputs) -> float:
    flow = synaptic_flow(bypass_batchnorm(inputs.model()), tuple(inputs.batch.images.shape[1:]), inputs.device)
    if math.isnan(flow):
        return flow
    return math.log(flow) if flow > 0 else -math.inf


register(Proxy("synflow", synflow, "ln of the synaptic flow on all-ones input, |weights|, BatchNorm bypassed"))
