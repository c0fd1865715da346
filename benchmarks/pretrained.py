"""``train.init`` against timm and torchvision: a ResNet-50 with random weights, saved as safetensors, loaded into
``specs/resnet50.yaml`` through the ``timm`` (``torchvision``) map gives the same outputs.

Every tensor of the source model is drawn at random first (batch-norm statistics and the zero-initialised last
norms included, so every path of the network counts), then saved with safetensors and read back by
:func:`archdsl.weights.init_weights`. Both models run in float64 and eval mode on the same random batch; the figure
is the largest absolute difference of the logits over the largest absolute logit (must be under 1e-10).

Run: ``python -m benchmarks.pretrained --json benchmarks/results/pretrained.json`` (environment:
benchmarks/README.md; needs timm, torchvision and safetensors). ``--quick``: 64 px inputs.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # archdsl from this checkout, also where the bench venv has no editable install
    sys.path.insert(0, str(ROOT))

import archdsl  # noqa: E402
from archdsl.compiler.build import build_from_plan  # noqa: E402
from archdsl.spec.train import InitSpec  # noqa: E402
from archdsl.weights import init_weights  # noqa: E402
from benchmarks.common import machine, report  # noqa: E402

SPEC = ROOT / "specs" / "resnet50.yaml"
TOLERANCE = 1e-10
"""Largest relative difference of the float64 logits accepted."""


def _timm() -> nn.Module:
    import timm

    return timm.create_model("resnet50", pretrained=False)


def _torchvision() -> nn.Module:
    import torchvision

    return torchvision.models.resnet50(weights=None)


SOURCES: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "timm resnet50": ("timm", _timm),
    "torchvision resnet50": ("torchvision", _torchvision),
}
"""Row name -> (``train.init.map``, the source model with random weights; nothing is downloaded)."""


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Draw every float tensor: conv/linear weights at 1/sqrt(fan-in), norm scales in [0.5, 1.5], biases and means
    small, variances in [0.5, 1.5]."""
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        r = torch.rand(t.shape, generator=generator, dtype=t.dtype)
        if t.dim() > 1:
            t.copy_(torch.randn(t.shape, generator=generator, dtype=t.dtype) / math.sqrt(t[0].numel()))
        elif name.endswith(("running_var", "weight")):
            t.copy_(0.5 + r)
        else:
            t.copy_(0.2 * (r - 0.5))


def check(name: str, map_name: str, make: Callable[[], nn.Module], size: int, folder: Path) -> dict[str, object]:
    """One row: save the source's random weights, load them through ``train.init``, compare float64 logits."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    source = make()
    randomize(source, generator)
    path = folder / f"{map_name}_resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    plan = archdsl.plan_model(archdsl.load_spec(SPEC))
    model = build_from_plan(plan)
    start = time.perf_counter()
    copied = init_weights(model, plan, InitSpec.model_validate({"from": str(path), "map": map_name}))
    seconds = time.perf_counter() - start
    source, model = source.double().eval(), model.double().eval()
    x = torch.randn(2, 3, size, size, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        want, got = source(x), model(x)
    rel = float((got - want).abs().max() / want.abs().max())
    return {
        "source": name,
        "map": map_name,
        "tensors": copied,
        "of": len(source.state_dict()),
        "size": size,
        "load_s": round(seconds, 3),
        "max_rel_diff": f"{rel:.2e}",
        "ok": rel < TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows and the machine here")
    parser.add_argument("--quick", action="store_true", help="64 px inputs instead of 224")
    args = parser.parse_args(argv)
    size = 64 if args.quick else 224
    with tempfile.TemporaryDirectory() as tmp:
        rows = [check(name, map_name, make, size, Path(tmp)) for name, (map_name, make) in SOURCES.items()]
    info = machine(torch.device("cpu")) | {"quick": args.quick, "tolerance": TOLERANCE}
    report(info, rows, ["source", "map", "tensors", "of", "size", "load_s", "max_rel_diff", "ok"], args.json)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
