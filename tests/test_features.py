"""Feature taps: every stage's output and its description, as timm models offer them, kept by the export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archdsl

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "resnet50": [(256, 4), (512, 8), (1024, 16), (2048, 32)],
    "botnet50": [(256, 4), (512, 8), (1024, 16), (2048, 32)],
    "halonet_h1": [(64, 4), (128, 8), (256, 16), (512, 32)],
    "volo_d1": [(192, 8), (384, 16)],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_feature_info_matches_the_stages(name: str) -> None:
    spec = archdsl.load_spec(ROOT / "specs" / f"{name}.yaml")
    plan = archdsl.plan_model(spec)
    model = archdsl.build_model(spec, device="meta")
    info = [(f["num_chs"], f["reduction"]) for f in model.feature_info]
    assert info == EXPECTED[name] == [(f["num_chs"], f["reduction"]) for f in plan.feature_info]
    assert [f["module"] for f in model.feature_info] == [f"stages.{i}" for i in range(len(info))]
    size = plan.input[-1]
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, *plan.input, device="meta"))
    assert [tuple(f.shape[1:]) for f in features] == [(c, size // r, size // r) for c, r in EXPECTED[name]]
    for i, f in enumerate(model.feature_info):
        assert model.get_submodule(str(f["module"])) is model.stages[i]


def test_feature_info_after_up_sampling() -> None:
    """A stage with stride 1/2 (a CARAFE transition) halves the reduction; a map up-sampled past the input's
    size has the reduction 1/k, a float, in the plan, the built model and the exported source alike."""
    spec = archdsl.load_spec(ROOT / "specs" / "digits_carafe.yaml")
    model = archdsl.build_model(spec, device="meta")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(48, 1), (64, 2), (96, 4), (64, 2)]
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 1, 16, 16, device="meta"))
    assert [tuple(f.shape[1:]) for f in features] == [(48, 16, 16), (64, 8, 8), (96, 4, 4), (64, 8, 8)]
    from archdsl.spec.load import spec_from_text

    text = (
        "name: up\ninput: {channels: 3, size: 8}\nstem: {type: conv, channels: 8}\nstages:\n"
        "  - {channels: 8, stride: 1/2, transition: {type: carafe, compressed_channels: 4}, blocks: [{type: basic}]}\n"
        "  - {channels: 8, stride: 1/2, transition: {type: carafe, compressed_channels: 4}, blocks: [{type: basic}]}\n"
        "  - {channels: 8, stride: 4, blocks: [{type: basic}]}\n"
        "head: {type: classifier, num_classes: 2}\n"
    )
    spec = spec_from_text(text)
    plan = archdsl.plan_model(spec)
    assert [f["reduction"] for f in plan.feature_info] == [0.5, 0.25, 1]
    assert [f["reduction"] for f in archdsl.build_model(spec, device="meta").feature_info] == [0.5, 0.25, 1]
    from archdsl.export.source import generate_source

    assert "feature_reductions=[0.5, 0.25, 1]," in generate_source(plan)


def test_forward_features_feed_the_head() -> None:
    torch.manual_seed(0)
    model = archdsl.build_model(archdsl.load_spec(ROOT / "specs" / "digits_hybrid.yaml")).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model.head(features[-1]), model(x))
        torch.testing.assert_close(features[0], model.stages[0](model.stem(x)))


def test_the_exported_model_keeps_its_feature_taps(tmp_path: Path) -> None:
    from archdsl.export.artifact import ExportSource, export_model

    spec = archdsl.load_spec(ROOT / "specs" / "digits_hybrid.yaml")
    export_model(ExportSource(spec), tmp_path / "art", formats=("source",))
    code = (
        "import sys; sys.modules['archdsl'] = None\n"
        "import importlib.util, torch\n"
        f"s = importlib.util.spec_from_file_location('m', {str(tmp_path / 'art' / 'model.py')!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "model = m.build().eval()\n"
        "print([(f['num_chs'], f['reduction']) for f in model.feature_info])\n"
        "print([tuple(t.shape) for t in model.forward_features(torch.randn(2, *m.INPUT_SHAPE))])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info, shapes = proc.stdout.strip().splitlines()
    assert info == "[(64, 1), (96, 2), (128, 4)]"
    assert shapes == "[(2, 64, 16, 16), (2, 96, 8, 8), (2, 128, 4, 4)]"
