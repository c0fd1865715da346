"""Write and read export artifacts: a directory a user can take anywhere, with nothing of archdsl in it.

``DIR/`` holds ``model.py`` (standalone source with ``build()`` and ``INPUT_SHAPE``), ``weights.safetensors``,
``spec.yaml`` (fully resolved), ``model.pt2`` (torch.export, dynamic batch), optionally ``model.onnx`` and
``model.ts``, and ``manifest.json``. The directory is assembled beside the target and renamed into place.
"""

from __future__ import annotations

import importlib
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

from archdsl.compiler.programs import example_input, export_onnx, export_program, onnx_external_data
from archdsl.errors import ArchDSLError, Location, SpecError, UsageError
from archdsl.export.source import generate_source, model_class_name
from archdsl.export.verify import MANIFEST, read_manifest, sha256_file, verify_artifact
from archdsl.planner import plan_model
from archdsl.spec.load import dump_spec
from archdsl.spec.model import ModelSpec

__all__ = ["DEFAULT_FORMATS", "FORMATS", "ExportResult", "ExportSource", "export_model", "load_model"]

FORMATS = ("source", "state_dict", "pt2", "onnx", "torchscript")
DEFAULT_FORMATS = ("source", "state_dict", "pt2")


@dataclass(frozen=True)
class ExportSource:
    """What to export: a spec, its trained weights (None: freshly initialised), and what is known of it."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    origin: str = ""
    reads: tuple[Path, ...] = ()
    """Files and directories the export reads from (a checkpoint, a spec, a study's directory): ``--out``
    may never replace them or a directory holding them."""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files: list[str]
    manifest: dict[str, Any]


def _dataset(spec: ModelSpec) -> Any:
    from archdsl.kinds import DATASETS

    return DATASETS.get(spec.train.data.name)


def _preprocessing(spec: ModelSpec) -> dict[str, Any]:
    """How an image must be prepared for the model: what its dataset kind says, for the spec's input."""
    c, size = spec.input.channels, spec.input.size
    prep: dict[str, Any] = {
        "resize": [size, size],
        "resize_filter": "bilinear",
        "channels": c,
        "color": "grey" if c == 1 else "rgb",
    }
    module, _, function = _dataset(spec).preprocessing.partition(":")
    try:
        prep.update(getattr(importlib.import_module(module), function)(spec.train.data, c, size))
    except ArchDSLError as err:  # a dataset that cannot be read (a missing extra or directory): at its spec key
        if spec.source is None:
            raise
        raise err.located(spec.source.locate) from None
    prep["normalise"] = "(x - mean) / std per channel, x = pixel / 255 after the resize (and inversion)"
    return prep


def _class_names(spec: ModelSpec) -> list[str]:
    return list(_dataset(spec).class_names(spec.train.data, spec.head.num_classes))


def export_model(
    source: ExportSource, out: str | Path, formats: Sequence[str] = DEFAULT_FORMATS, force: bool = False
) -> ExportResult:
    """Write the artifact directory ``out`` (atomically; an existing one only with ``force``)."""
    out = Path(out)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError.option("--format", f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    _check_target(out, source, force)
    spec = source.spec
    plan = plan_model(spec)
    from archdsl.compiler.build import build_from_plan

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # the spec's seed for fresh weights and the trace inputs; the caller's generator is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.train.seed)
            model = build_from_plan(plan, "cpu")
            if source.state_dict is not None:
                model.load_state_dict(source.state_dict, strict=True)
            cls = model_class_name(plan)
            _write_files(model.eval(), plan, spec, cls, tmp, formats)
        files = written_files(tmp)
        manifest = _manifest(source, plan, cls, tmp, files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _readable(tmp)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, sorted([*files, MANIFEST]), manifest)


def _check_target(out: Path, source: ExportSource, force: bool) -> None:
    """``--out`` may name a new directory, or (with ``--force``) an earlier artifact, and nothing else: never
    the directory the model comes from (``export run/best.ckpt --out run --force`` would delete the run), a
    file, or a directory that is not an artifact."""
    target = out.resolve()
    for read in source.reads:
        read = read.resolve()
        if read == target or target in read.parents:
            raise UsageError.option(
                "--out",
                f"'{out}' holds what is being exported ({read}); replacing it would "
                "delete the source: choose another directory",
            )
    if not out.exists() and not out.is_symlink():
        return
    if not force:
        raise UsageError.option("--out", f"'{out}' exists; pass --force to replace it")
    if out.is_symlink() or not out.is_dir() or not _is_artifact(out):
        raise UsageError.option(
            "--out",
            f"'{out}' exists and is not an artifact written by archdsl export (no "
            f"{MANIFEST} with file hashes); --force replaces only an earlier artifact",
        )


def _is_artifact(directory: Path) -> bool:
    try:
        read_manifest(directory)
    except SpecError:
        return False
    return True


def written_files(directory: Path) -> list[str]:
    """Every file under ``directory`` (relative, sorted): what the manifest lists and hashes, whichever
    format wrote it (ONNX's external data included, where it has any)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _readable(directory: Path) -> None:
    """Give every file the mode a plain ``open()`` gave the manifest (0666 less the umask): some writers
    (safetensors) make private 0600 files, and an artifact is meant to be shared."""
    mode = (directory / MANIFEST).stat().st_mode & 0o777
    for p in directory.rglob("*"):
        if p.is_file():
            p.chmod(mode)


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _write_files(model: nn.Module, plan: Any, spec: ModelSpec, cls: str, out: Path, formats: Sequence[str]) -> None:
    (out / "spec.yaml").write_text(
        f"# fully resolved spec of {spec.name} (every default written out)\n" + dump_spec(spec)
    )
    if "source" in formats:
        header = f"{cls}: {plan.params:,} parameters, input {tuple(plan.input)}"
        (out / "model.py").write_text(generate_source(plan, header))
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if "state_dict" in formats:
        from safetensors.torch import save_file

        save_file(state, str(out / "weights.safetensors"), metadata={"format": "pt", "model": spec.name})
    x = example_input(tuple(plan.input))  # from the generator seeded with the spec's seed
    if "pt2" in formats:
        torch.export.save(export_program(model, x), out / "model.pt2")
    if "onnx" in formats:
        # one file (no model.onnx.data beside it) while the weights fit protobuf's 2 GB limit
        export_onnx(model, x, out / "model.onnx", external_data=onnx_external_data(plan.params))
    if "torchscript" in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(model, x).save(str(out / "model.ts"))


def _manifest(source: ExportSource, plan: Any, cls: str, out: Path, files: list[str]) -> dict[str, Any]:
    import archdsl

    spec = source.spec
    hashes = {name: sha256_file(out / name) for name in files}
    return {
        "name": spec.name,
        "class": cls,
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


def load_model(directory: str | Path, trust: bool = False) -> nn.Module:
    """The exported model as a plain ``nn.Module`` (eval mode), built by its own ``model.py`` once its code,
    weights and spec match the manifest's SHA-256 (``trust=True`` skips that check)."""
    directory = Path(directory)
    path = directory / "model.py"
    if not path.is_file():
        raise SpecError.at(
            "", f"no model.py in '{directory}' (was it exported with --format source?)", Location(str(directory))
        )
    verify_artifact(directory, trust)
    name = f"archdsl_export_{uuid.uuid4().hex[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
        model: nn.Module = module.build()
    except Exception as exc:  # only reachable with trust=True or an archdsl bug: the code matched its hash
        raise SpecError.at(
            "", f"model.py does not build the model: {type(exc).__name__}: {exc}", Location(str(path))
        ) from None
    finally:
        sys.modules.pop(name, None)
    weights = directory / "weights.safetensors"
    if weights.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise SpecError.at(
                "", f"the weights do not load into model.py's model: {exc}", Location(str(weights))
            ) from None
    return model.eval()
