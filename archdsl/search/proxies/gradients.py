"""Proxies of the loss gradient at initialisation, on one batch (Abdelfattah et al., ICLR 2021, "Zero-Cost
Proxies for Lightweight NAS", arXiv:2101.08134):

- ``grad_norm``: sum over parameter tensors of ``|| dL/dtheta ||_2``;
- ``snip``: connection sensitivity (Lee et al., ICLR 2019, arXiv:1810.02340), ``sum |theta * dL/dtheta|``.

``L`` is the mean cross-entropy of the batch, from one training-mode forward. Every trainable parameter
tensor counts (biases and normalisation weights too, not only convolution and linear weights).
"""

from __future__ import annotations

import torch

from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.registry import Proxy, register

__all__ = ["grad_norm", "snip"]


def grad_norm(inputs: ProxyInputs) -> float:
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for _, g in inputs.gradients:
        total += torch.linalg.vector_norm(g.double())
    return float(total)


def snip(inputs: ProxyInputs) -> float:
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for p, g in inputs.gradients:
        total += (p.double() * g.double()).abs().sum()
    return float(total)


register(Proxy("grad_norm", grad_norm, "sum of the L2 norms of the loss gradients per parameter tensor"))
register(Proxy("snip", snip, "SNIP saliency: sum |theta * dL/dtheta| (Lee et al. 2019)"))
