"""Kinds from outside the package: a plug-in distribution (made here, installed on ``sys.path`` only) adds a
block through the ``archdsl.kinds`` entry point, and every command sees it; late registration is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

KINDS = '''
"""A demo plug-in: the ``scaled_residual`` block (x + s * conv(x))."""

from typing import Literal

from pydantic import Field

from archdsl.kinds import BLOCKS, Kind
from archdsl.plan import cost
from archdsl.plan.shapes import make_node
from archdsl.spec.base import BlockSpecBase


class ScaledResidualSpec(BlockSpecBase):
    """x + scale * conv_kxk(x), keeping channels and map size."""

    type: Literal["scaled_residual"]
    kernel_size: int = Field(3, ge=1, le=7)
    """Conv kernel."""
    scale: float = 0.5
    """Residual scale."""


def plan(spec, ctx):
    c, h, w = ctx.in_shape
    kwargs = {"channels": c, "kernel_size": spec.kernel_size, "scale": spec.scale}
    return make_node(ctx, "block", "scaled_residual", ctx.in_shape, "archdsl_demo_plugin.modules.ScaledResidual",
                     kwargs, cost.conv(c, c, spec.kernel_size, (h, w), bias=True))


BLOCKS.register("scaled_residual", Kind("scaled_residual", ScaledResidualSpec, plan))
'''

MODULES = '''
"""The demo plug-in's module (standalone: torch only)."""

import torch
from torch import nn


class ScaledResidual(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, scale: float = 0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.conv(x)
'''

SPEC = """\
name: plugged
input: {channels: 1, size: 8}
stem: {type: conv, channels: 8}
stages:
  - {channels: 8, blocks: [{type: scaled_residual, repeat: 2, kernel_size: 3}]}
head: {type: classifier, num_classes: 10}
"""

SEARCH = """\
base: spec.yaml
objectives: [{metric: params}]
budget: {trials: 3}
sampler: {name: grid}
params:
  stages.0.blocks.0.kernel_size: {choice: [1, 3, 5]}
"""


@pytest.fixture
def plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    package = site / "archdsl_demo_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(KINDS))
    (package / "modules.py").write_text(textwrap.dedent(MODULES))
    info = site / "archdsl_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archdsl-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archdsl.kinds]\ndemo = archdsl_demo_plugin\n")
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "search.yaml").write_text(SEARCH)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}


def _archdsl(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archdsl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_a_plugin_kind_is_in_schema_validate_build_export_and_search(plugin: dict[str, str], tmp_path: Path) -> None:
    schema = _archdsl(plugin, tmp_path, "schema")
    assert schema.returncode == 0 and "scaled_residual" in schema.stdout
    assert "x + scale * conv_kxk(x)" in schema.stdout
    check = _archdsl(plugin, tmp_path, "validate", "spec.yaml", "search.yaml")
    assert check.returncode == 0, check.stderr
    summary = _archdsl(plugin, tmp_path, "summary", "spec.yaml", "--json", "--tree")
    tree = json.loads(summary.stdout)
    part = tree["stages"][0]["parts"][0]
    assert part["type"] == "scaled_residual"
    assert part["recipe"]["target"] == "archdsl_demo_plugin.modules.ScaledResidual"
    export = _archdsl(plugin, tmp_path, "export", "spec.yaml", "--out", "art", "--format", "source,state_dict")
    assert export.returncode == 0, export.stderr
    source = (tmp_path / "art" / "model.py").read_text()
    assert "class ScaledResidual(nn.Module):" in source and "archdsl_demo_plugin" not in source.split('"""', 2)[2]
    # the exported model runs without archdsl and without the plug-in
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['archdsl'] = sys.modules['archdsl_demo_plugin'] = None\n"
            "import importlib.util, torch\n"
            "spec = importlib.util.spec_from_file_location('m', 'art/model.py')\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(tuple(m.build()(torch.randn(2, *m.INPUT_SHAPE)).shape))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.stdout.strip() == "(2, 10)", run.stderr
    search = _archdsl(plugin, tmp_path, "search", "search.yaml", "--out", "runs", "--json")
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout.strip().splitlines()[-1])["trials"]["complete"] == 3


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    proc = _archdsl({**os.environ, "PYTHONPATH": str(ROOT)}, tmp_path, "validate", "spec.yaml")
    assert proc.returncode == 2 and "unknown type 'scaled_residual'" in proc.stderr


def test_late_registration_is_refused_with_the_way_to_register() -> None:
    import archdsl.spec.model  # noqa: F401  (builds the spec models and closes the registries)
    from archdsl.kinds import BLOCKS, Kind

    with pytest.raises(ValueError, match=r"registered after the spec models were built.*'archdsl\.kinds' entry-point"):
        BLOCKS.register("too_late", Kind("too_late", object, lambda spec, ctx: None))  # type: ignore[arg-type]
    assert "too_late" not in BLOCKS.names()


def _channels_last(env: dict[str, str], cwd: Path) -> str:
    code = "import archdsl\nplan = archdsl.plan_model(archdsl.load_spec('spec.yaml'))\nprint(plan.channels_last)"
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_plugin_kind_named_by_its_literal_declares_the_layout_its_module_needs(
    plugin: dict[str, str], tmp_path: Path
) -> None:
    assert _channels_last(plugin, tmp_path) == "True"  # the scaled residual blocks carry most of the FLOPs
    named_once = KINDS.replace('make_node(ctx, "block", "scaled_residual",', 'make_node(ctx, "block", spec.type,')
    named_once = named_once.replace(
        'BLOCKS.register("scaled_residual", Kind("scaled_residual", ScaledResidualSpec, plan))',
        'BLOCKS.add(Kind.of(ScaledResidualSpec, plan, layout="nchw"))',
    )
    assert named_once.count('"scaled_residual"') == 1
    (tmp_path / "site" / "archdsl_demo_plugin" / "__init__.py").write_text(textwrap.dedent(named_once))
    assert _channels_last(plugin, tmp_path) == "False"
