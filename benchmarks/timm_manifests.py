"""Write the tensor names and shapes of timm's and torchvision's models to ``tests/data/timm/<model>.json``.

CI has no timm: ``tests/test_init_weights.py`` builds fake checkpoints from these manifests (``{key: shape}``, in the
model's ``state_dict`` order) to check that ``train.init``'s maps name every tensor. Regenerate them after a timm or
torchvision upgrade that renames a model's tensors; a file whose content is unchanged is not rewritten.

Run: ``python -m benchmarks.timm_manifests`` (environment: benchmarks/README.md; needs timm and torchvision)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks from this checkout
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "tests" / "data" / "timm"


def _timm(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return make


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return make


def _repo(name: str) -> Callable[[], nn.Module]:
    """A timm model as ``benchmarks.models`` composes it (BoTNet-50, HaloNet-H0: no registered timm model)."""

    def make() -> nn.Module:
        from benchmarks import models

        return getattr(models, name)(256 if "halonet" in name else 224)

    return make


MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": _timm("resnet50"),
    "torchvision_resnet50": _torchvision("resnet50"),
    "botnet50": _repo("bot50_timm"),
    "halonet_h0": _repo("halonet_h0_timm"),
    "halonet_h1": _timm("halonet_h1"),
    **{f"volo_d{k}": _timm(f"volo_d{k}_224") for k in range(1, 6)},
}
"""Manifest name -> the model (random weights: nothing is downloaded); torchvision's is written only where it differs
from timm's."""


def manifest(model: nn.Module) -> dict[str, list[int]]:
    """``{key: shape}`` of ``model.state_dict()``, in its order."""
    return {key: list(t.shape) for key, t in model.state_dict().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory of the manifests (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifests = {name: manifest(make()) for name, make in MODELS.items()}
    same = manifests["resnet50"] == manifests["torchvision_resnet50"]
    if same:  # one manifest serves both maps
        del manifests["torchvision_resnet50"]
    for name, data in manifests.items():
        path = args.out / f"{name}.json"
        text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        print(f"{path}: {len(data)} tensors")
    print(f"timm and torchvision resnet50 name and shape their tensors {'alike' if same else 'DIFFERENTLY'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
