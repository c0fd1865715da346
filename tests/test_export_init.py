"""``archdsl export SPEC --init PATH``: a standalone artifact of pretrained weights, loaded as ``train.init`` loads
them (no training), every mismatch located before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archdsl.cli import main
from tests.test_init_weights import RESNET50, fake_checkpoint, manifest


def test_a_timm_resnet50_file_exports_as_the_spec_s_weights(tmp_path: Path) -> None:
    state = fake_checkpoint(manifest())
    ckpt = tmp_path / "resnet50_timm.pt"
    torch.save(state, ckpt)
    out = tmp_path / "art"
    args = ["export", str(RESNET50), "--init", str(ckpt), "--init-map", "timm", "--format", "state_dict", "--json"]
    assert main([*args, "--out", str(out)]) == 0
    weights = load_file(str(out / "weights.safetensors"))
    assert len(weights) == len(state)  # every tensor of the file, none fresh
    assert torch.equal(weights["stem.0.0.weight"], state["conv1.weight"])
    assert torch.equal(weights["stem.0.1.running_var"], state["bn1.running_var"])
    assert torch.equal(weights["head.fc.weight"], state["fc.weight"])
    manifest_json = json.loads((out / "manifest.json").read_text())
    assert manifest_json["params"] == 25_557_032


def test_a_mismatched_file_is_located_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = fake_checkpoint(manifest())
    state["fc.weight"] = torch.zeros(100, 2048)
    ckpt = tmp_path / "other_head.pt"
    torch.save(state, ckpt)
    out = tmp_path / "art"
    assert main(["export", str(RESNET50), "--init", str(ckpt), "--init-map", "timm", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{RESNET50}:" in err and "head: checkpoint key fc.weight has (100, 2048), the spec plans (1000, 2048)" in err
    )
    assert not out.exists()


def test_init_goes_with_a_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path), "--init", "x.pt", "--out", str(tmp_path / "a")]) == 2
    assert "--init: --init PATH (and --init-map) go with a spec file SOURCE" in capsys.readouterr().err
