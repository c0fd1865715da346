"""``train.init`` against timm and torchvision: a timm (torchvision) model with random weights, saved as safetensors,
loaded into its archdsl spec through the ``timm`` (``torchvision``) map gives the same outputs.

Rows: ResNet-50 (timm, torchvision), BoTNet-50 (``benchmarks.models.bot50_timm``), HaloNet-H0
(``benchmarks.models.halonet_h0_timm``) and H1 (the halo mixers set to ``compat: timm``, 256 px), VOLO-D1 to D5
(``volo_d{k}_224``).

Every tensor of the source model is drawn at random first (batch-norm statistics and the zero-initialised last
norms included, so every path of the network counts), then saved with safetensors and read back by
:func:`archdsl.weights.init_weights`. Both models run in float64 and eval mode on the same random batch; the figure
is the largest absolute difference of the logits over the largest absolute logit (must be under 1e-10).

Run: ``python -m benchmarks.pretrained --json benchmarks/results/pretrained.json`` (environment:
benchmarks/README.md; needs timm, torchvision and safetensors). ``--quick``: 64 px inputs, ResNet and BoTNet rows
only; ``--only NAME``: the rows whose name contains NAME.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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

SPECS = ROOT / "specs"
TOLERANCE = 1e-10
"""Largest relative difference of the float64 logits accepted."""


def _timm(name: str, **kwargs: object) -> Callable[[int], nn.Module]:
    def make(size: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)

    return make


def _torchvision(size: int) -> nn.Module:
    import torchvision

    return torchvision.models.resnet50(weights=None)


def _repo(name: str) -> Callable[[int], nn.Module]:
    def make(size: int) -> nn.Module:
        from benchmarks import models

        return getattr(models, name)(size)  # type: ignore[no-any-return]

    return make


HALO_TIMM = tuple(f"stages.{i}.blocks.0.mixer.compat=timm" for i in range(4))
"""timm's HaloNet weights compute timm's function in the halo mixer's timm mode."""


@dataclass(frozen=True)
class Source:
    """One row: the archdsl spec, the ``train.init.map``, the source model (random weights: nothing is downloaded)."""

    spec: str
    map: str
    make: Callable[[int], nn.Module]
    size: int = 224
    quick: bool = True
    """Also in ``--quick`` (at 64 px)."""
    overrides: tuple[str, ...] = ()


SOURCES: dict[str, Source] = {
    "timm resnet50": Source("resnet50", "timm", _timm("resnet50")),
    "torchvision resnet50": Source("resnet50", "torchvision", _torchvision),
    "timm botnet50 (bot50_timm)": Source("botnet50", "timm", _repo("bot50_timm")),
    "timm halonet_h0 (halonet_h0_timm)": Source("halonet_h0", "timm", _repo("halonet_h0_timm"), 256, False, HALO_TIMM),
    "timm halonet_h1": Source("halonet_h1", "timm", _timm("halonet_h1", img_size=256), 256, False, HALO_TIMM),
    **{f"timm volo_d{k}_224": Source(f"volo_d{k}", "timm", _timm(f"volo_d{k}_224"), quick=False) for k in range(1, 6)},
}
"""Row name -> its source."""


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


def check(name: str, row: Source, quick: bool, folder: Path) -> dict[str, object]:
    """One row: save the source's random weights, load them through ``train.init``, compare float64 logits."""
    from safetensors.torch import save_file

    size = 64 if quick else row.size
    generator = torch.Generator().manual_seed(0)
    source = row.make(size)
    randomize(source, generator)
    path = folder / f"{row.map}_{row.spec}.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    overrides = [*row.overrides, *([f"input.size={size}"] if size != row.size else [])]
    plan = archdsl.plan_model(archdsl.load_spec(SPECS / f"{row.spec}.yaml", overrides))
    model = build_from_plan(plan)
    start = time.perf_counter()
    copied = init_weights(model, plan, InitSpec.model_validate({"from": str(path), "map": row.map}))
    seconds = time.perf_counter() - start
    source, model = source.double().eval(), model.double().eval()
    x = torch.randn(2, 3, size, size, generator=generator, dtype=torch.float64)
    start = time.perf_counter()
    with torch.no_grad():
        want, got = source(x), model(x)
    forward = time.perf_counter() - start
    rel = float((got - want).abs().max() / want.abs().max())
    return {
        "source": name,
        "map": row.map,
        "tensors": copied,
        "of": len(source.state_dict()),
        "size": size,
        "load_s": round(seconds, 3),
        "forward_s": round(forward, 1),
        "max_rel_diff": f"{rel:.2e}",
        "ok": rel < TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows and the machine here")
    parser.add_argument("--quick", action="store_true", help="64 px inputs, the ResNet and BoTNet rows only")
    parser.add_argument("--only", default="", help="the rows whose name contains this")
    args = parser.parse_args(argv)
    chosen = {n: r for n, r in SOURCES.items() if args.only in n and (r.quick or not args.quick)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, row in chosen.items():
            rows.append(check(name, row, args.quick, Path(tmp)))
            print(rows[-1], flush=True)
    info = machine(torch.device("cpu")) | {"quick": args.quick, "tolerance": TOLERANCE, "dtype": "float64"}
    columns = ["source", "map", "tensors", "of", "size", "load_s", "forward_s", "max_rel_diff", "ok"]
    report(info, rows, columns, args.json)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
