"""VOLO D1-D5 zoo specs: planned counts equal the meta-built model's, and match the published table."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl import build_model, load_spec, plan_model
from archdsl.compiler.count import measure

SPECS = Path(__file__).resolve().parents[1] / "specs"

# model: (published params in millions, C0, C1)
VOLO = {
    "volo_d1": (26.6, 192, 384),
    "volo_d2": (58.7, 256, 512),
    "volo_d3": (86.3, 256, 512),
    "volo_d4": (193.0, 384, 768),
    "volo_d5": (296.0, 384, 768),
}


@pytest.mark.parametrize("name", sorted(VOLO))
def test_volo_zoo(name: str) -> None:
    published, c0, c1 = VOLO[name]
    path = SPECS / f"{name}.yaml"
    header = path.read_text().splitlines()[0]
    assert header.startswith("#") and "arXiv:2106.13112" in header

    spec = load_spec(path)
    plan = plan_model(spec)
    model = build_model(spec, device="meta")
    got = measure(model, plan.input)

    assert got.params == plan.params
    assert abs(got.flops - plan.flops) <= 0.02 * got.flops
    assert got.output == plan.output == (1000,)
    assert abs(got.params / 1e6 - published) <= 0.005 * published, got.params

    assert plan.stem.out_shape == (c0, 28, 28)
    assert [s.out_shape for s in plan.stages] == [(c0, 28, 28), (c1, 14, 14)]
