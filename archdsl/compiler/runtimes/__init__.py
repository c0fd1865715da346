"""Runtimes latency is timed in, as kinds in a registry (:data:`RUNTIMES`), one file per kind.

``eager`` (:mod:`.eager`): the ``nn.Module`` run by PyTorch; ``onnxruntime`` (:mod:`.onnx_runtime`): the ONNX
graph ``archdsl export --format onnx`` writes, in an ONNX Runtime session; ``torch_export`` (:mod:`.torch_export`):
the ``torch.export`` program of ``model.pt2``, its graph module run eagerly. The exported runtimes export the
architecture in memory (its weights, trained or not, change nothing of the graph) and leave no file behind.
"""

from __future__ import annotations

from archdsl.compiler.runtimes import eager, onnx_runtime, torch_export  # each registers its kind
from archdsl.compiler.runtimes.registry import RUNTIMES, Runner, Runtime, register

__all__ = ["RUNTIMES", "Runner", "Runtime", "register"]
