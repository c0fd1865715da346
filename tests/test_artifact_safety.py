"""Artifacts are verified before they run, and ``export --force`` replaces only an earlier artifact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.cli import main
from archdsl.errors import SpecError
from archdsl.export.artifact import ExportSource, export_model
from archdsl.spec.load import spec_from_text

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "specs" / "hybrid_tiny.yaml").read_text()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("art") / "tiny"
    assert (
        main(["export", str(ROOT / "specs" / "hybrid_tiny.yaml"), "--out", str(out), "--format", "source,state_dict"])
        == 0
    )
    return out


def _copy(artifact: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(artifact, tmp_path / "copy"))


def test_a_verified_artifact_loads(artifact: Path) -> None:
    model = archdsl.load_model(artifact)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_code_appended_to_model_py_never_runs(artifact: Path, tmp_path: Path) -> None:
    art = _copy(artifact, tmp_path)
    marker = tmp_path / "pwned"
    with (art / "model.py").open("a") as f:
        f.write(f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(SpecError) as err:
        archdsl.load_model(art)
    assert str(err.value).startswith(f"{art / 'model.py'}: its SHA-256 ")
    assert "the file changed after export" in str(err.value) and "--trust" in str(err.value)
    assert not marker.exists()
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", str(art), str(image)]) == 2
    assert not marker.exists()
    assert main(["predict", str(art), str(image), "--trust"]) == 0  # the owner's override
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("damage", ["truncate_weights", "delete_weights", "edit_spec", "unlisted_code", "manifest"])
def test_damaged_artifacts_are_refused_with_the_file_named(
    artifact: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    art = _copy(artifact, tmp_path)
    weights = art / "weights.safetensors"
    expected = {
        "truncate_weights": f"{weights}: its SHA-256 ",
        "delete_weights": f"{weights}: weights.safetensors is listed in the manifest but missing",
        "edit_spec": f"{art / 'spec.yaml'}: its SHA-256 ",
        "unlisted_code": f"{art / 'manifest.json'}: sha256.model.py: model.py is in the directory but not in the "
        "manifest",
        "manifest": f"{art / 'manifest.json'}: not a readable manifest",
    }[damage]
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "delete_weights":
        weights.unlink()
    elif damage == "edit_spec":
        (art / "spec.yaml").write_text((art / "spec.yaml").read_text() + "# edited\n")
    elif damage == "unlisted_code":
        manifest = json.loads((art / "manifest.json").read_text())
        del manifest["sha256"]["model.py"]
        (art / "manifest.json").write_text(json.dumps(manifest))
    else:
        (art / "manifest.json").write_text('{"sha256": ')
    with pytest.raises(SpecError) as err:
        archdsl.load_model(art)
    assert str(err.value).startswith(expected), str(err.value)
    assert main(["predict", str(art), str(ROOT / "docs" / "report.png")]) == 2
    assert capsys.readouterr().err.strip().startswith(expected)


def test_truncated_weights_with_trust_are_a_located_error_not_a_crash(artifact: Path, tmp_path: Path) -> None:
    art = _copy(artifact, tmp_path)
    weights = art / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SpecError, match=re.escape(f"{weights}: the weights do not load")):
        archdsl.load_model(art, trust=True)


def test_force_never_replaces_the_run_it_exports_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = archdsl.load_spec(ROOT / "specs" / "hybrid_tiny.yaml")
    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "best.ckpt"
    ckpt.write_bytes(b"pretend")
    with pytest.raises(Exception, match="holds what is being exported"):
        export_model(ExportSource(spec, None, {}, "test", (ckpt,)), run, ("source",), force=True)
    assert ckpt.read_bytes() == b"pretend"
    assert main(["export", str(ROOT / "specs" / "hybrid_tiny.yaml"), "--out", str(ROOT / "specs"), "--force"]) == 2
    assert "holds what is being exported" in capsys.readouterr().err
    assert (ROOT / "specs" / "hybrid_tiny.yaml").is_file()


def test_force_replaces_only_an_earlier_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    spec = str(ROOT / "specs" / "hybrid_tiny.yaml")
    assert main(["export", spec, "--out", str(home), "--force", "--format", "source"]) == 2
    assert "is not an artifact written by archdsl export" in capsys.readouterr().err
    assert (home / "thesis.tex").read_text() == "years of work"
    file = tmp_path / "notes.txt"
    file.write_text("keep")
    assert main(["export", spec, "--out", str(file), "--force", "--format", "source"]) == 2
    assert file.read_text() == "keep"


@pytest.mark.parametrize("name", ["none", "F", "bottleneck", "True_", "value_error", "nn", "build"])
def test_spec_names_that_collide_still_give_working_source(tmp_path: Path, name: str) -> None:
    spec = spec_from_text(re.sub(r"^name: .*$", f"name: {name}", TINY, flags=re.MULTILINE), "t.yaml")
    out = tmp_path / "art"
    export_model(ExportSource(spec), out, ("source", "state_dict"))
    manifest = json.loads((out / "manifest.json").read_text())
    model = archdsl.load_model(out)
    assert type(model).__name__ == manifest["class"]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_export_leaves_the_global_random_generator_alone(tmp_path: Path) -> None:
    spec = archdsl.load_spec(ROOT / "specs" / "hybrid_tiny.yaml")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    export_model(ExportSource(spec), tmp_path / "a", ("source",))
    assert torch.equal(torch.rand(3), expected)
    # and the untrained weights are still the spec seed's, whatever the caller's generator held
    torch.manual_seed(7)
    export_model(ExportSource(spec), tmp_path / "b", ("source", "state_dict"))
    from safetensors.torch import load_file

    export_model(ExportSource(spec), tmp_path / "c", ("source", "state_dict"))
    b, c = (load_file(str(tmp_path / d / "weights.safetensors")) for d in "bc")
    assert b.keys() == c.keys() and all(torch.equal(b[k], c[k]) for k in b)
