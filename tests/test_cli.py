"""The CLI: exit codes, one located line per problem, the --json shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli import main

ROOT = Path(__file__).parent.parent
RESNET = str(ROOT / "specs" / "resnet50.yaml")


def test_summary_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", RESNET, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert set(data) == {"name", "params", "flops", "input", "output", "stages"}
    assert data["name"] == "resnet50"
    assert data["params"] == 25_557_032
    assert data["input"] == [3, 224, 224]
    assert data["output"] == [1000]
    assert [s["output"] for s in data["stages"]] == [
        [256, 56, 56],
        [512, 28, 28],
        [1024, 14, 14],
        [2048, 7, 7],
    ]
    assert [s["index"] for s in data["stages"]] == [0, 1, 2, 3]
    assert all(set(s) == {"index", "output", "params", "flops"} for s in data["stages"])
    assert data["flops"] > sum(s["flops"] for s in data["stages"])  # stem and head are counted in the total


def test_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", RESNET, "--blocks"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032" in out and "2048x7x7" in out and "blocks.0" in out


def test_validate_all_specs_and_searches(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in [*(ROOT / "specs").glob("*.yaml"), *(ROOT / "search").glob("*.yaml")])
    assert main(["validate", *files]) == 0
    out = capsys.readouterr().out
    assert "ok  " + str(ROOT / "search" / "digits.yaml") + ": search over 9 parameters" in out


def test_validate_reports_every_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(RESNET).read_text().replace("num_classes: 1000", "num_clases: 1000"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n")
    assert main(["validate", str(bad), RESNET, str(broken)]) == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert f"{bad}:11:1: head.num_classes: is required but missing" in err
    assert f"{bad}:11:26: head.num_clases: unknown key 'num_clases' (did you mean 'num_classes'?)" in err
    assert any(line.startswith(f"{broken}:2:1: invalid YAML") for line in err)
    assert "ok" in captured.out and "resnet50" in captured.out


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object"
    assert {"stem", "stages", "head", "input", "name"} <= set(schema["properties"])
    assert "BottleneckSpec" in schema["$defs"]


def test_module_entry_point_bad_input_exit_2_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text(
        "name: x\ninput: {size: 32}\nstem: {type: conv, channels: 8}\nstages: []\n"
        "head: {type: classifier, num_classes: 2}\n"
    )
    proc = subprocess.run([sys.executable, "-m", "archdsl", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"{bad}:4:1: stages: list should have at least 1 item after validation, not 0"


def test_readme_spec_reference_is_current() -> None:
    from archdsl.spec.reference import BEGIN, END, spec_reference

    text = (ROOT / "README.md").read_text()
    assert text[text.index(BEGIN) : text.index(END) + len(END)] == spec_reference(), (
        "run: python -m archdsl.spec.reference --write README.md"
    )
