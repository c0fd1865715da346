"""Write and read export artifacts: a directory a user can take anywhere, with nothing of archdsl in it.

``DIR/`` holds ``model.py`` (standalone source with ``build()`` and ``INPUT_SHAPE``), ``weights.safetensors``,
``spec.yaml`` (fully resolved), ``model.pt2`` (torch.export, dynamic batch), optionally ``model.onnx`` and
``model.ts``, and ``manifest.json``. The directory is assembled beside the target and renamed into place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archdsl.errors import Location, SpecError
from archdsl.export.record import recording
from archdsl.export.source import class_name, generate_source
from archdsl.plan.planner import plan_model
from archdsl.spec.load import dump_spec
from archdsl.spec.model import ModelSpec

__all__ = ["DEFAULT_FORMATS", "FORMATS", "ExportResult", "ExportSource", "export_model", "load_model"]

FORMATS = ("source", "state_dict", "pt2", "onnx", "torchscript")
DEFAULT_FORMATS = ("source", "state_dict", "pt2")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportSource:
    """What to export: a spec, its trained weights (None: freshly initialised), and what is known of it."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    origin: str = ""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files: list[str]
    manifest: dict[str, Any]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _preprocessing(spec: ModelSpec) -> dict[str, Any]:
    data = spec.train.data
    c, size = spec.input.channels, spec.input.size
    prep: dict[str, Any] = {"resize": [size, size], "channels": c, "color": "grey" if c == 1 else "rgb"}
    if data.name == "digits":
        from archdsl.train.data.digits import digits_normalisation

        mean, std = digits_normalisation(c, size)
        prep.update(scale="pixel / 255 (dark digit strokes are high values, as in the UCI digits)", mean=mean, std=std)
        prep["invert"] = True
    elif data.name == "image_folder":
        prep.update(scale="pixel / 255", mean=list(data.mean)[:c], std=list(data.std)[:c], invert=False)
    else:
        prep.update(scale="pixel / 255", mean=[0.0] * c, std=[1.0] * c, invert=False)
    return prep


def _class_names(spec: ModelSpec) -> list[str]:
    n = spec.head.num_classes
    if spec.train.data.name == "cifar10":
        from archdsl.train.data.cifar10 import CLASSES

        return list(CLASSES)
    if spec.train.data.name == "image_folder":
        from archdsl.train.data.image_folder import list_image_folder

        root = Path(spec.train.data.root) / "train"
        if root.is_dir():
            return list_image_folder(root)[1]
    return [str(i) for i in range(n)]


def export_model(
    source: ExportSource, out: str | Path, formats: Sequence[str] = DEFAULT_FORMATS, force: bool = False
) -> ExportResult:
    """Write the artifact directory ``out`` (atomically; an existing one only with ``force``)."""
    out = Path(out)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise SpecError.at("", f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}", Location("--format"))
    if out.exists() and not force:
        raise SpecError.at("", f"'{out}' exists; pass --force to replace it", Location("--out"))
    spec = source.spec
    plan = plan_model(spec)
    torch.manual_seed(spec.train.seed)
    with recording():
        from archdsl.compiler.build import build_from_plan

        model = build_from_plan(plan, "cpu")
    if source.state_dict is not None:
        model.load_state_dict(source.state_dict, strict=True)
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = _write_files(model, plan, spec, tmp, formats)
        manifest = _manifest(source, plan, tmp, files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, sorted([*files, MANIFEST]), manifest)


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _write_files(model: nn.Module, plan: Any, spec: ModelSpec, out: Path, formats: Sequence[str]) -> list[str]:
    files = ["spec.yaml"]
    (out / "spec.yaml").write_text(
        f"# fully resolved spec of {spec.name} (every default written out)\n" + dump_spec(spec)
    )
    if "source" in formats:
        header = f"{class_name(spec.name)}: {plan.params:,} parameters, input {tuple(plan.input)}"
        (out / "model.py").write_text(generate_source(model, plan, header))
        files.append("model.py")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if "state_dict" in formats:
        from safetensors.torch import save_file

        save_file(state, str(out / "weights.safetensors"), metadata={"format": "pt", "model": spec.name})
        files.append("weights.safetensors")
    x = torch.randn(2, *plan.input)
    batch = torch.export.Dim("batch", min=1, max=4096)
    if "pt2" in formats:
        exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        torch.export.save(exported, out / "model.pt2")
        files.append("model.pt2")
    if "onnx" in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x,),
                str(out / "model.onnx"),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                input_names=["images"],
                output_names=["logits"],
                verbose=False,
            )
        files.append("model.onnx")
    if "torchscript" in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(model, x).save(str(out / "model.ts"))
        files.append("model.ts")
    return files


def _manifest(source: ExportSource, plan: Any, out: Path, files: list[str]) -> dict[str, Any]:
    import archdsl

    spec = source.spec
    hashes = {"spec.yaml": _sha256_file(out / "spec.yaml")}
    if "weights.safetensors" in files:
        hashes["weights.safetensors"] = _sha256_file(out / "weights.safetensors")
    return {
        "name": spec.name,
        "class": class_name(spec.name),
        "input_shape": list(plan.input),
        "num_classes": plan.output[0],
        "class_names": _class_names(spec),
        "preprocessing": _preprocessing(spec),
        "params": plan.params,
        "flops": plan.flops,
        "metrics": source.metrics,
        "trained": source.state_dict is not None,
        "origin": source.origin,
        "files": sorted([*files, MANIFEST]),
        "versions": {"archdsl": archdsl.__version__, "torch": torch.__version__.split("+")[0]},
        "sha256": hashes,
    }


def load_model(directory: str | Path) -> nn.Module:
    """The exported model as a plain ``nn.Module`` (eval mode), built by its own ``model.py``."""
    directory = Path(directory)
    path = directory / "model.py"
    if not path.is_file():
        raise SpecError.at(
            "", f"no model.py in '{directory}' (was it exported with --format source?)", Location(str(directory))
        )
    name = f"archdsl_export_{uuid.uuid4().hex[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    model: nn.Module = module.build()
    weights = directory / "weights.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()
