"""Strict YAML reading with locations."""

from __future__ import annotations

import pytest

from archdsl.errors import SpecError
from archdsl.limits import YAML_NODES
from archdsl.spec.source import read_yaml, read_yaml_text


def test_scalars_follow_yaml_1_2() -> None:
    doc = read_yaml_text(
        "a: 1e-4\nb: no\nc: 1.10\nd: 2_000\ne: true\nf: ~\ng: -3.5E+2\nh: 032\ni: 1:30\nj: 0b101\n"
        "k: 0o17\nl: 0x1f\nm: -.5\n"
    )
    assert doc.data == {
        "a": 1e-4,
        "b": "no",
        "c": 1.1,
        "d": 2000,
        "e": True,
        "f": None,
        "g": -350.0,
        "h": 32,
        "i": "1:30",
        "j": "0b101",
        "k": 15,
        "l": 31,
        "m": -0.5,
    }
    assert isinstance(doc.data["a"], float)


def test_locations_of_values_and_nested_keys() -> None:
    doc = read_yaml_text("top:\n  inner: [1, {x: 5}]\n", "f.yaml")
    assert doc.locations[("top",)] == (1, 1)
    assert doc.locations[("top", "inner", 1, "x")] == (2, 18)
    assert str(doc.locate("top.inner.1.missing")) == "f.yaml:2:14"
    assert str(doc.locate(("nothing",))) == "f.yaml:1:1"


def test_duplicate_keys_are_rejected_at_the_second() -> None:
    with pytest.raises(SpecError) as err:
        read_yaml_text("a: 1\nb:\n  c: 1\n  c: 2\n", "d.yaml")
    assert str(err.value) == "d.yaml:4:3: b.c: duplicate key 'c' (first given at line 3)"


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system [echo hi]\n",
        "x: !!python/name:os.system\n",
        "x: !!binary aGVsbG8=\n",
        "x: 2001-12-14\n",
    ],
)
def test_no_code_or_exotic_types(text: str) -> None:
    with pytest.raises(SpecError, match=r"^t\.yaml:1:"):
        read_yaml_text(text, "t.yaml")


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
        prev = name
    with pytest.raises(SpecError, match=f"over the ceiling of {YAML_NODES.default:,} "):
        read_yaml_text("\n".join(lines) + "\n")


def test_syntax_error_is_located() -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:2:3: invalid YAML: this key is indented 2 spaces, more than"):
        read_yaml_text("name: x\n  bad: [\n", "s.yaml")
    with pytest.raises(SpecError, match=r"^s\.yaml:3:1: invalid YAML: expected the node content"):  # PyYAML's words
        read_yaml_text("name: x\nbad: [\n", "s.yaml")


def test_missing_and_empty_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="file not found"):
        read_yaml(tmp_path / "none.yaml")
    (tmp_path / "e.yaml").write_text("# nothing\n")
    with pytest.raises(SpecError, match="empty"):
        read_yaml(tmp_path / "e.yaml")
