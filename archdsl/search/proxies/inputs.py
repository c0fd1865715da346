"""What a proxy reads: the planned spec, the batch, and fresh copies of one seeded initialisation.

The model is built once per candidate (lazily: ``params`` and ``flops`` never build it), with its weights
drawn after ``torch.manual_seed(seed)``; every proxy gets its own deep copy, so a proxy that rewrites its
weights (synflow) or its normalisation statistics (a train-mode forward) leaves nothing for the next one.
The cross-entropy gradients are computed once and shared by the gradient proxies (grad_norm, snip).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.plan.shapes import ModelPlan
from archdsl.planner import PlannedSpec
from archdsl.search.proxies.batch import ProxyBatch

__all__ = ["ParamGrad", "ProxyInputs"]

ParamGrad = tuple[torch.Tensor, torch.Tensor]
"""A parameter (detached) and the gradient of the loss with respect to it (zeros where it took no part)."""


@dataclass
class ProxyInputs:
    """One candidate, one batch and one seed; the model and the gradients are made on first use."""

    planned: PlannedSpec | None
    """The candidate (``None`` only with ``initial`` given: then the plan's counts are not available)."""
    batch: ProxyBatch
    seed: int = 0
    initial: nn.Module | None = None
    """The model at initialisation; when None it is built from the plan, seeded, on first use."""

    @property
    def device(self) -> torch.device:
        return self.batch.images.device

    @property
    def plan(self) -> ModelPlan:
        if self.planned is None:
            raise ValueError("this proxy reads the plan, and these inputs hold a model without one")
        return self.planned.plan

    @cached_property
    def _initial(self) -> nn.Module:
        if self.initial is not None:
            return self.initial
        from archdsl.compiler.build import build_from_plan

        torch.manual_seed(self.seed)
        return build_from_plan(self.plan, device=self.device)

    def model(self) -> nn.Module:
        """A fresh copy of the initial model (in training mode), the proxy's to change."""
        return copy.deepcopy(self._initial).train()

    @cached_property
    def gradients(self) -> list[ParamGrad]:
        """Every trainable parameter with ``d CE(model(images), labels) / d theta`` of one training-mode forward
        (batch statistics in the normalisation layers, as in the reference implementations); nothing is stored
        in ``.grad``."""
        model = self.model()
        params = [p for p in model.parameters() if p.requires_grad]
        with torch.enable_grad():
            loss = F.cross_entropy(model(self.batch.images), self.batch.labels)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [
            (p.detach(), g.detach() if g is not None else torch.zeros_like(p))
            for p, g in zip(params, grads, strict=True)
        ]
