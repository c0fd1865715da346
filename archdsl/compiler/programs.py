"""A model's exported programs, as ``archdsl export`` writes them: ``torch.export`` and ONNX, batch dimension dynamic.

The artifact (:mod:`archdsl.export.artifact`) saves these programs as ``model.pt2`` and ``model.onnx``; latency
timing (:mod:`archdsl.compiler.runtimes`) runs the same programs in memory, so a search times what a deployment
loads. Both are traced from an example of batch 2 (a batch of 1 would be specialised into the graph) and accept
any batch from 1 to :data:`MAX_BATCH`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from torch.export import ExportedProgram
    from torch.onnx import ONNXProgram

__all__ = [
    "INPUT_NAME",
    "MAX_BATCH",
    "ONNX_SINGLE_FILE_LIMIT",
    "OUTPUT_NAME",
    "example_input",
    "export_onnx",
    "export_program",
    "onnx_external_data",
]

MAX_BATCH = 4096
"""The largest batch the exported programs accept."""
INPUT_NAME, OUTPUT_NAME = "images", "logits"
"""The ONNX graph's input and output names."""
ONNX_SINGLE_FILE_LIMIT = 2 * 1024**3
"""Bytes of float32 weights from which ONNX keeps them in a ``.data`` file beside the graph (protobuf's limit)."""


def example_input(input_shape: tuple[int, ...], device: str | torch.device = "cpu") -> torch.Tensor:
    """A random batch of 2 (from the global generator) to trace with: the batch dimension stays symbolic."""
    return torch.randn(2, *input_shape, device=device)


def _batch() -> dict[int, Any]:
    return {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}


def export_program(model: nn.Module, example: torch.Tensor) -> ExportedProgram:
    """``torch.export`` of the model (in eval mode) with a dynamic batch dimension: ``model.pt2``'s program."""
    return torch.export.export(model, (example,), dynamic_shapes=(_batch(),))


def onnx_external_data(params: int) -> bool:
    """Whether float32 weights of ``params`` parameters are too large for one ONNX file (protobuf's 2 GB)."""
    return params * 4 >= ONNX_SINGLE_FILE_LIMIT


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path | None = None, *, external_data: bool = False
) -> ONNXProgram:
    """The ONNX program of the model (in eval mode), from the dynamo exporter, with a dynamic batch dimension,
    input ``images`` and output ``logits``: ``model.onnx``'s graph. Written to ``path`` when given (the weights in a
    ``.data`` file beside it with ``external_data``); otherwise kept in memory (``.model_proto``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            None if path is None else str(path),
            dynamo=True,
            dynamic_shapes=(_batch(),),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
            external_data=external_data,
        )
    if program is None:  # only the TorchScript exporter (dynamo=False) returns nothing
        raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNX program")
    return program
