"""``onnxruntime``: the ONNX graph of ``model.onnx`` (:func:`archdsl.compiler.programs.export_onnx`) in an ONNX
Runtime ``InferenceSession``, as a deployment without PyTorch runs it.

The graph is exported in memory and handed to the session as bytes (a model whose weights pass protobuf's 2 GB
goes through a temporary directory, removed once the session has loaded it). The session has ONNX Runtime's
default graph optimisations, ``intra_op_num_threads`` = the threads asked for and ``inter_op_num_threads`` = 1
(sequential execution runs one operator at a time), and the CPU execution provider, or CUDA's for ``device:
cuda`` (``onnxruntime-gpu``). Its input is fed from host memory, as ``session.run`` is called in a deployment.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archdsl.compiler.programs import INPUT_NAME, OUTPUT_NAME, example_input, export_onnx, onnx_external_data
from archdsl.compiler.runtimes.registry import Runner, Runtime, register

__all__ = ["PACKAGE", "missing", "prepare"]

PACKAGE = "onnxruntime"
"""The Python package (``pip install onnxruntime``, or ``onnxruntime-gpu`` for CUDA)."""
CUDA_PROVIDER = "CUDAExecutionProvider"


def missing(device: str) -> str | None:
    """The package, and on CUDA its CUDA execution provider, if this Python lacks them."""
    if importlib.util.find_spec(PACKAGE) is None:
        return f"needs the Python package {PACKAGE}, which is not installed (pip install {PACKAGE})"
    if device == "cuda":
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        if CUDA_PROVIDER not in providers:
            return (
                f"on cuda needs ONNX Runtime's {CUDA_PROVIDER} (pip install onnxruntime-gpu); this {PACKAGE} "
                f"{onnxruntime.__version__} has {', '.join(providers)}"
            )
    return None


def _session(model: nn.Module, x: torch.Tensor, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    cuda = (CUDA_PROVIDER, {"device_id": x.device.index or 0})  # the trial's own GPU
    providers: list[Any] = [cuda] if x.device.type == "cuda" else ["CPUExecutionProvider"]
    example = example_input(tuple(x.shape[1:]), x.device)
    params = sum(p.numel() for p in model.parameters())
    if not onnx_external_data(params):
        proto = export_onnx(model, example).model_proto
        return onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=providers)
    with tempfile.TemporaryDirectory(prefix="archdsl-latency-") as tmp:  # weights past protobuf's 2 GB
        path = Path(tmp) / "model.onnx"
        export_onnx(model, example, path, external_data=True)
        return onnxruntime.InferenceSession(str(path), options, providers=providers)


def prepare(model: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """Export the graph, open a session with ``threads`` intra-op threads, and run it on ``x`` (from host memory)."""
    session = _session(model, x, threads)
    feed = {INPUT_NAME: x.detach().cpu().numpy()}
    return lambda: torch.from_numpy(session.run([OUTPUT_NAME], feed)[0])


register(
    Runtime(
        "onnxruntime",
        "the ONNX graph of model.onnx in an ONNX Runtime InferenceSession (a deployment without PyTorch)",
        prepare,
        missing,
    )
)
