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
    assert set(data) == {"name", "params", "flops", "input", "output", "stem", "stages", "head"}
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
    parts = [data["stem"], *data["stages"], data["head"]]
    assert sum(p["params"] for p in parts) == data["params"] and sum(p["flops"] for p in parts) == data["flops"]
    assert data["stem"]["type"] == "conv" and data["head"]["type"] == "classifier"


def test_summary_blocks_name_every_repeat_by_its_module_path(capsys: pytest.CaptureFixture[str]) -> None:
    import archdsl

    volo = str(ROOT / "specs" / "volo_d1.yaml")
    assert main(["summary", volo, "--blocks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    blocks = [b for s in data["stages"] for b in s["blocks"]]
    assert len({b["path"] for b in blocks}) == len(blocks)  # no two rows share a label
    stage1 = data["stages"][1]["blocks"]
    assert [b["path"] for b in stage1[:3]] == ["stages.1.0", "stages.1.1", "stages.1.2"]
    assert [(b["spec"], b["repeat"]) for b in stage1[2:4]] == [("stages.1.blocks.0", 0), ("stages.1.blocks.0", 1)]
    assert all(sum(b["params"] for b in s["blocks"]) == s["params"] for s in data["stages"])
    model = archdsl.build_model(archdsl.load_spec(volo), device="meta")
    for b in blocks:  # each path is the module in the built model, with the planned parameters
        assert sum(p.numel() for p in model.get_submodule(b["path"]).parameters()) == b["params"], b["path"]
    assert main(["summary", RESNET, "--blocks", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["stages"][0]["blocks"][0]
    assert (first["type"], first["inner"]) == ("bottleneck", ["conv"])
    # the table: one row per repeat with its module path and the spec entry it repeats; the mixer inside
    assert main(["summary", volo, "--blocks"]) == 0
    table = capsys.readouterr().out
    assert table.count("stages.1.blocks.0 #") == 14 and "stages.1.15" in table and "stages.1.blocks.0 #14" in table
    assert main(["summary", RESNET, "--blocks"]) == 0
    assert "bottleneck(conv)" in capsys.readouterr().out


def test_summary_of_a_search_file_says_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    search = ROOT / "search" / "digits.yaml"
    assert main(["summary", str(search)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{search}:") and "this is a search definition" in line
    assert "../specs/digits_search_base.yaml" in line


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


def test_docs_spec_reference_is_current() -> None:
    from archdsl.spec.reference import BEGIN, END, PAGE, spec_reference

    assert PAGE == "docs/reference/spec.md"
    text = (ROOT / PAGE).read_text()
    assert text[text.index(BEGIN) : text.index(END) + len(END)] == spec_reference(), (
        "run: python -m archdsl.spec.reference --write docs/reference/spec.md"
    )


def test_docs_search_reference_is_current() -> None:
    from archdsl.search.space.reference import BEGIN, END, PAGE, search_reference

    assert PAGE == "docs/reference/search.md"
    text = (ROOT / PAGE).read_text()
    assert text[text.index(BEGIN) : text.index(END) + len(END)] == search_reference(), (
        "run: python -m archdsl.search.space.reference --write docs/reference/search.md"
    )
    assert "`startup_trials`" in search_reference()
    assert "| `None` |" not in text and "| `False` |" not in text  # defaults are written as YAML


def test_reference_write_regenerates_between_the_markers_only(tmp_path: Path) -> None:
    from archdsl.spec.reference import BEGIN, END, PAGE, main, spec_reference

    page = tmp_path / "spec.md"
    page.write_text(f"# Title\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    assert main(["--write", str(page)], PAGE, BEGIN, END, spec_reference) == 0
    assert page.read_text() == f"# Title\n\n{spec_reference()}\n\nafter\n"
    assert main(["--wirte"], PAGE, BEGIN, END, spec_reference) == 2


def test_readme_and_docs_examples_and_command_table_match_the_repository(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from archdsl.cli import COMMANDS, _parser

    readme = (ROOT / "README.md").read_text()
    spec = (ROOT / "specs" / "hybrid_tiny.yaml").read_text()
    assert "`specs/hybrid_tiny.yaml`, as it is in the repository:\n\n```yaml\n" + spec + "```" in readme
    assert "```yaml\n" + (ROOT / "search" / "digits.yaml").read_text() + "```" in readme
    assert "python -m pytest -n 2 --dist worksteal -q -p no:cacheprovider" in readme  # what .ci/run runs
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links and [link for link in links if not (ROOT / link).is_file()] == []
    text = (ROOT / "docs" / "getting-started.md").read_text()
    _parser()  # registers every command
    table = set(re.findall(r"^\| `archdsl (\w+)", text, flags=re.MULTILINE))
    assert table == set(COMMANDS), set(COMMANDS) ^ table
    assert main(["schema", "--search", "--indent", "0"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "archdsl search file" and "params" in schema["required"]


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "archdsl", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write (the interpreter takes a while to start)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


def test_validate_counts_parameters_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = tmp_path / "one.yaml"
    search.write_text(
        f"base: {ROOT / 'specs' / 'digits_search_base.yaml'}\nparams:\n  train.optimizer.lr: "
        "{float: [1.0e-3, 5.0e-3]}\n"
    )
    assert main(["validate", str(search)]) == 0
    assert ": search over 1 parameter of " in capsys.readouterr().out


def test_summary_prints_the_spec_name_as_written_in_both_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        (ROOT / "specs" / "digits_hybrid.yaml").read_text().replace("name: digits_hybrid", "name: My_hybrid")
    )
    for extra in ([], ["--blocks"]):
        assert main(["summary", str(spec), *extra]) == 0
        assert capsys.readouterr().out.startswith("My_hybrid: input 1x16x16 -> 10\n")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_worker_without_cuda_refuses_device_cuda_in_one_line_before_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``worker --device cuda`` and ``train.accelerator: cuda`` on a torch without CUDA: exit 2, one line with
    the install hint, and no storage or study made (every trial died in Lightning, the job reported success)."""
    from tests.test_search import BASE, write_search

    search = write_search(tmp_path)
    db = tmp_path / "study.db"
    argv = ["worker", str(search), "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cuda"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("--device: cuda needs a CUDA build of torch and a visible GPU: torch ")
    assert "install torch's CUDA build on GPU nodes" in line and "docs/cluster.md, 'GPU clusters'" in line
    assert not db.exists() and not (tmp_path / "out").exists()
    search = write_search(
        tmp_path / "spec", base=BASE.replace("data: {name: digits", "accelerator: cuda, data: {name: digits")
    )
    assert main([argv[0], str(search), *argv[2:]]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'spec' / 'base.yaml'}:") and ": train.accelerator: cuda needs a CUDA" in line
    assert not db.exists()
