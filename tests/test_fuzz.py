"""Property-based fuzzing of spec and search YAML: whatever the file says, archdsl answers with located
problems (``ArchDSLError``) or a valid result, never another exception.

Seeds are the repository's own specs and search files; hypothesis mutates them as text (characters inserted,
deleted or replaced, lines dropped, duplicated or re-indented) and as data (a value anywhere replaced by one
from a hostile pool: huge, negative and non-finite numbers, long strings, deep or empty containers, null; a
key dropped or added), then ``validate_file`` reads, validates and plans the file, and a valid search space
resolves and plans one random trial. CI runs 2,000 cases (``ARCHDSL_FUZZ_EXAMPLES`` scales them, e.g.
``ARCHDSL_FUZZ_EXAMPLES=40000 python -m pytest tests/test_fuzz.py`` for a long campaign).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl.errors import ArchDSLError
from archdsl.validate import validate_file

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SEARCHES = sorted((ROOT / "search").glob("*.yaml"))
EXAMPLES = int(os.environ.get("ARCHDSL_FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="ARCHDSL_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seed_text(path: Path) -> str:
    """The file's text, with a search's relative ``base:`` made absolute so the copy can live anywhere."""
    text = path.read_text()
    if path.parent.name == "search":
        data = yaml.safe_load(text)
        text = text.replace(f"base: {data['base']}", f"base: {(path.parent / data['base']).resolve()}")
    return text


SEEDS = [_seed_text(p) for p in [*SPECS, *SEARCHES]]

HOSTILE = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63, 10**12, 10**23]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "x" * 5000, "none", "1/2", "1/3", "*", "stages.*", "<<", "~", "\x7f", "💥"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 300), max_size=6),
    st.dictionaries(
        st.sampled_from(["type", "name", "choice", "int", "float", "repeat", "x"]),
        st.integers(-3, 300) | st.text(max_size=8),
        max_size=3,
    ),
    st.recursive(st.integers(0, 3), lambda inner: st.lists(inner, max_size=3), max_leaves=30),
)


TOKENS = [
    "&a [*a, *a]",
    "*nope",
    "!!python/object:os.system",
    "0x1F",
    "0o17",
    "032",
    "1:30",
    ".inf",
    "-.nan",
    "9" * 40,
    "2_0",
    "{",
    "[[[[[[",
    "~",
    "1e999",
]
"""Scalars that a text mutation writes in place of a value."""


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def data_mutants(draw: st.DrawFn) -> str:
    """A seed with one to three values replaced, keys dropped or keys added, dumped back to YAML."""
    data = yaml.safe_load(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        *head, last = path
        parent = data
        for p in head:
            parent = parent[p]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            parent[last] = draw(HOSTILE)
        elif action == "drop":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=0, max_size=12))] = draw(HOSTILE)
        else:
            parent.append(draw(HOSTILE))
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@st.composite
def text_mutants(draw: st.DrawFn) -> str:
    """A seed with characters or lines inserted, deleted, replaced, duplicated or re-indented."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        kind = draw(st.sampled_from(["char", "char", "drop", "dup", "indent", "tokens"]))
        if kind == "char" and text:
            at = draw(st.integers(0, len(text) - 1))
            new = draw(st.sampled_from([*":-[]{},&*!|>#'\"%@` \t\n0123456789.eE+", "", "<<: ", "\x00", "é"]))
            text = text[:at] + new + text[at + draw(st.integers(0, 2)) :]
            continue
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i] if lines else "")
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip()
        else:  # swap a scalar for a hostile token
            token = draw(st.sampled_from(TOKENS))
            if ": " in lines[i]:
                key, _, _ = lines[i].partition(": ")
                lines[i] = f"{key}: {token}"
        text = "\n".join(lines)
    return text


def _answer(text: str, tmp: Path) -> None:
    """Validate ``text`` as a file; a valid search space also resolves and plans one random trial."""
    path = tmp / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        validate_file(path)
    except ArchDSLError as err:
        assert err.problems and all(str(p) for p in err.problems)
        return
    from archdsl.planner import plan_model
    from archdsl.search.space.load import load_search
    from archdsl.search.space.resolution import resolve
    from archdsl.spec.load import is_search_doc
    from archdsl.spec.source import read_yaml

    if not is_search_doc(read_yaml(path)):
        return
    space = load_search(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with contextlib.suppress(ArchDSLError):
        plan_model(resolve(space, study.ask()))


@pytest.fixture(scope="module")
def scratch() -> Any:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def test_the_seeds_are_valid(scratch: Path) -> None:
    for text in SEEDS:
        path = scratch / "seed.yaml"
        path.write_text(text)
        validate_file(path)


@FUZZ
@given(text=data_mutants())
def test_mutated_values_give_located_problems_or_a_plan(scratch: Path, text: str) -> None:
    _answer(text, scratch)


@FUZZ
@given(text=text_mutants())
def test_mutated_text_gives_located_problems_or_a_plan(scratch: Path, text: str) -> None:
    _answer(text, scratch)


@settings(FUZZ, max_examples=EXAMPLES * 2)
@given(text=st.text(max_size=300))
def test_arbitrary_text_gives_located_problems(scratch: Path, text: str) -> None:
    _answer(text, scratch)
