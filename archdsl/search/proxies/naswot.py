"""``naswot``: the score of "Neural Architecture Search without Training" (Mellor et al., ICML 2021,
arXiv:2006.04647).

One training-mode forward of the batch (no gradients). Every activation module (:data:`ACTIVATIONS`) gives each
image a binary code: which of its units are active, ``output > 0``. For ReLU that is the paper's code; for
GELU, SiLU, Hardswish, ELU, Mish and leaky ReLU it is the sign of the pre-activation (each is positive exactly
where its input is), the usual generalisation. Over the layers, ``K[i, j] = sum (N_A - Hamming(c_i, c_j))``,
i.e. ``sum c c^T + (1 - c)(1 - c)^T``, and the score is ``ln |det K|`` (``slogdet``, float64); ``-inf`` when
two images share every code (K singular).

Activations written as functions inside a module (``F.relu`` in a few attention blocks) are not seen; the
blocks of the digits search use modules only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archdsl.nn.act import ACTIVATIONS as _NAMED
from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.registry import Proxy, register

__all__ = ["ACTIVATIONS", "CodeKernel", "naswot"]

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    *_NAMED.values(),
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
)
"""The module types whose outputs give the binary codes (positive exactly where their input is)."""


class CodeKernel:
    """Accumulates ``K`` from the outputs of the activation modules of one forward (a forward hook)."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.k = torch.zeros(batch, batch, dtype=torch.float64, device=device)
        self.layers = 0

    def add(self, output: torch.Tensor) -> None:
        """Add one layer's codes; ``output``'s first dimension is the batch (or batch-major, as ``B * heads``)."""
        if output.numel() == 0 or output.numel() % self.batch:
            return
        c = (output.detach().reshape(self.batch, -1) > 0).float()  # 0/1: exact in float32 below 2**24 units
        units = c.shape[1]
        ones = c.sum(1, dtype=torch.float64)
        # c c^T + (1 - c)(1 - c)^T = 2 c c^T - s_i - s_j + N
        self.k += 2.0 * (c @ c.T).double() - ones[:, None] - ones[None, :] + units
        self.layers += 1

    def hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            self.add(output)

    def score(self) -> float:
        if self.layers == 0:
            return float("nan")  # no activation: nothing to measure
        return float(torch.linalg.slogdet(self.k).logabsdet)


def naswot(inputs: ProxyInputs) -> float:
    model = inputs.model()
    images = inputs.batch.images
    kernel = CodeKernel(images.shape[0], inputs.device)
    handles = [m.register_forward_hook(kernel.hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return kernel.score()


register(Proxy("naswot", naswot, "ln |det K| of the activation codes of the batch (Mellor et al. 2021)"))
