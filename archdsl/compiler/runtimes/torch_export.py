"""``torch_export``: the ``torch.export`` program of ``model.pt2`` (:func:`archdsl.compiler.programs.export_program`),
run as ``torch.export.load(...).module()`` runs it.

``ExportedProgram.module()`` is the exported graph as a torch.fx ``GraphModule``: generated Python that calls the
graph's ATen operators one by one in eager mode (batch dimension symbolic, the input's shape checked on every
call), with none of the model's own classes left, and nothing compiled. It is not AOTInductor
(``torch._inductor.aoti_compile_and_package``), whose compiled kernels would be faster: a deployment that compiles
the program must be timed as such.
"""

from __future__ import annotations

import torch
from torch import nn

from archdsl.compiler.programs import example_input, export_program
from archdsl.compiler.runtimes.registry import Runner, Runtime, register

__all__ = ["prepare"]


def prepare(model: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """Export the model (traced on a batch-2 example on ``x``'s device) and call the program's module on ``x``."""
    program = export_program(model, example_input(tuple(x.shape[1:]), x.device)).module()
    return lambda: program(x)


register(
    Runtime(
        "torch_export",
        "the torch.export program of model.pt2, its graph module run eagerly (not AOTInductor)",
        prepare,
    )
)
