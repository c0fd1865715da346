"""HaloNet's training-component table as a search parameter (``components``) and its report.

The rows are applied to the digits search base (exactly the paths each row's components name, and a spec that
still validates and plans), checked against the paper's table, refused with located errors when misnamed, and
reported beside the paper's numbers: a study of made trials (no training) for the exact cells, and a real
one-epoch search (slow) for the command line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FixedTrial

import archdsl
from archdsl.cli import main
from archdsl.errors import SearchError
from archdsl.plan.published import HALONET_COMPONENTS
from archdsl.search.record import Attr
from archdsl.search.report.html import components_table, write_report
from archdsl.search.space.components import (
    COMPONENT_ROWS,
    LABEL_SMOOTHING,
    RANDAUGMENT,
    SE_ATTENTION,
    apply_components,
)
from archdsl.search.space.load import load_search, search_from_text
from archdsl.search.space.resolution import resolve
from archdsl.spec.load import parse_spec
from archdsl.spec.source import read_yaml

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "specs" / "digits_search_base.yaml"
STAGES = 4
"""Stages of the digits search base, one bottleneck each."""


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """``dotted path -> value`` of every leaf (a mapping or list is walked, not a leaf)."""
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(str(i), v) for i, v in enumerate(data)]
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out |= _leaves(value, f"{prefix}.{key}" if prefix else key)
    return out


def _changed(before: Any, after: Any) -> dict[str, Any]:
    """The leaves of ``after`` that are new or differ from ``before`` (none may disappear)."""
    old, new = _leaves(before), _leaves(after)
    assert set(old) <= set(new), sorted(set(old) - set(new))
    return {k: v for k, v in new.items() if old.get(k, object()) != v}


def _expected(row: str) -> dict[str, Any]:
    c = COMPONENT_ROWS[row]
    out: dict[str, Any] = {}
    if not c.label_smoothing:  # the base trains with 0.1 already: the rows without LS turn it off
        out["train.label_smoothing"] = 0.0
    if c.randaugment:
        out |= {f"train.augment.randaugment.{k}": v for k, v in RANDAUGMENT.items()}
    if c.se:
        out |= {f"stages.{i}.blocks.0.attention.{k}": v for i in range(STAGES) for k, v in SE_ATTENTION.items()}
    if c.silu:
        out |= {"stem.act": "silu", "head.act": "silu", **{f"stages.{i}.blocks.0.act": "silu" for i in range(STAGES)}}
    return out


@pytest.mark.parametrize("row", list(COMPONENT_ROWS))
def test_a_row_sets_exactly_its_components_and_the_spec_still_plans(row: str) -> None:
    doc = read_yaml(BASE)
    given = copy.deepcopy(doc.data)
    data = apply_components(doc.data, row)
    assert doc.data == given  # the base is left as it is
    assert _changed(doc.data, data) == _expected(row)
    spec = parse_spec(doc.__class__(**{**doc.__dict__, "data": data, "overrides": {}}))
    c = COMPONENT_ROWS[row]
    assert spec.train.label_smoothing == (LABEL_SMOOTHING if c.label_smoothing else 0.0)
    assert (spec.train.augment.randaugment is not None) == c.randaugment
    plan = archdsl.plan_model(spec)
    se = [n for n in plan.nodes() if n.role == "attention"]
    assert len(se) == (STAGES if c.se else 0)
    assert all(n.recipe.kwargs["reduced"] == n.in_shape[0] // 16 for n in se)  # 64/16 = 4, ... 128/16 = 8
    blocks = [n for n in plan.nodes() if n.role == "block"]
    assert {n.recipe.kwargs["act"] for n in [plan.stem, *blocks]} == {"silu" if c.silu else "relu"}


def test_rows_are_the_papers_rows() -> None:
    assert list(COMPONENT_ROWS) == list(HALONET_COMPONENTS)
    for row, components in COMPONENT_ROWS.items():
        assert set(components.names) == set(HALONET_COMPONENTS[row].components), row
    # the paper's lesson: label smoothing helps the attention model more than the conv one
    ls, base = HALONET_COMPONENTS["ls"], HALONET_COMPONENTS["baseline"]
    assert round(ls.halonet_top1 - base.halonet_top1, 1) == 1.1
    assert round(ls.resnet_top1 - base.resnet_top1, 1) == 0.5


def test_the_components_search_resolves_every_row_in_both_families() -> None:
    space = load_search(ROOT / "search" / "components_digits.yaml")
    assert space.definition.sampler.name == "grid"
    for row in COMPONENT_ROWS:
        for conv in (0, 4):
            spec = resolve(space, FixedTrial({"components": row, "conv_stages": conv, "train.seed": 2}))
            mixers = [s.blocks[0].mixer.type for s in spec.stages]
            assert mixers == (
                ["halo", "halo", "global_attention", "global_attention"]
                if conv == 0
                else ["conv", "conv", "conv", "conv"]
            )
            assert spec.train.seed == 2 and spec.train.epochs == 12
            assert (spec.stages[0].blocks[0].attention is not None) == COMPONENT_ROWS[row].se
            ra = spec.train.augment.randaugment
            assert (ra is not None) == COMPONENT_ROWS[row].randaugment
            if ra is not None:  # the search file's RandAugment, not the ImageNet default
                assert ra.magnitude == 5 and ra.ops is not None and "solarize" not in ra.ops
            archdsl.plan_model(spec)


def _augmented_base(tmp_path: Path) -> Path:
    """The digits base writing ``train.augment: {randaugment: null}`` (a section a row must switch off)."""
    text = BASE.read_text().replace("  data: {name: digits}", "  data: {name: digits}\n  augment: {randaugment: null}")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "base.yaml").write_text(text)
    return tmp_path / "base.yaml"


def test_the_row_applies_after_block_choices_and_before_parameters_that_tune_it(tmp_path: Path) -> None:
    _augmented_base(tmp_path)
    text = """\
base: base.yaml
sampler: {name: random}
params:
  components: {choice: [ls_ra, ls_se]}
  stages.3.blocks.0: {choice: {conv: {type: bottleneck, mixer: {type: conv}}}}
  train.augment.randaugment.magnitude: {float: [1.0, 3.0]}
"""
    space = search_from_text(text, "s.yaml", tmp_path)
    spec = resolve(space, FixedTrial({"components": "ls_se", "stages.3.blocks.0": "conv"}))
    assert spec.stages[3].blocks[0].attention is not None  # SE reached the chosen block
    assert spec.train.augment.randaugment is None  # no RA in this row: its magnitude was not sampled
    trial = FixedTrial({"components": "ls_ra", "stages.3.blocks.0": "conv", "train.augment.randaugment.magnitude": 2})
    assert resolve(space, trial).train.augment.randaugment.magnitude == 2.0


def _problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(SearchError) as err:
        load_search(path)
    return [str(p) for p in err.value.problems]


SEARCH = f"""\
base: {BASE}
params:
  train.seed: {{choice: [0, 1]}}
  components: {{choice: [baseline, ls_se_sliu, 3]}}
"""


def test_a_misnamed_row_is_located_with_the_name_it_resembles(tmp_path: Path) -> None:
    first, second = _problems(SEARCH, tmp_path)
    line = SEARCH.splitlines()[3]
    rows = "baseline, ls, ls_ra, se, se_silu, ls_se, ls_se_silu, ls_se_silu_ra"
    assert first == (
        f"{tmp_path}/search.yaml:4:{line.index('ls_se_sliu') + 1}: params.components.choice.1: unknown row "
        f"'ls_se_sliu' (did you mean 'ls_se_silu'?); rows: {rows}"
    )
    assert (
        second
        == f"{tmp_path}/search.yaml:4:{line.index('3]') + 1}: params.components.choice.2: unknown row 3; rows: {rows}"
    )


@pytest.mark.parametrize(
    ("param", "given"), [("{int: [0, 7]}", "an int range"), ("{float: [0.0, 1.0]}", "a float range")]
)
def test_components_is_a_choice_only(tmp_path: Path, param: str, given: str) -> None:
    (line,) = _problems(SEARCH.replace("{choice: [baseline, ls_se_sliu, 3]}", param), tmp_path)
    assert line.startswith(f"{tmp_path}/search.yaml:4:3: params.components: components is a choice of rows")
    assert line.endswith(f"not {given}")


def test_values_the_rows_set_are_not_set_or_searched_as_well(tmp_path: Path) -> None:
    text = SEARCH.replace("ls_se_sliu, 3", "ls") + "  train.label_smoothing: {float: [0.0, 0.2]}\n"
    text = text.replace(f"base: {BASE}", "base: base.yaml\nset: {train.label_smoothing: 0.2}")
    _augmented_base(tmp_path)
    fixed, searched = _problems(text, tmp_path)
    assert fixed.startswith(f"{tmp_path}/search.yaml:2:7: set.train.label_smoothing: the components")
    assert searched.startswith(f"{tmp_path}/search.yaml:6:3: params.train.label_smoothing: would overwrite")


def test_a_row_that_breaks_the_base_is_located_at_the_row(tmp_path: Path) -> None:
    text = SEARCH.replace("ls_se_sliu, 3", "ls_ra")
    text = text.replace(f"base: {BASE}", "base: base.yaml\nset: {train.augment.trivialaugment: true}")
    _augmented_base(tmp_path)
    (line,) = _problems(text, tmp_path)
    column = text.splitlines()[4].index("ls_ra") + 1
    assert line.startswith(
        f"{tmp_path}/search.yaml:5:{column}: params.components.choice.1: row 'ls_ra' makes an invalid spec of "
        f"{tmp_path}/base.yaml"
    )
    assert "randaugment and trivialaugment exclude each other" in line


# --- the report --------------------------------------------------------------------------------------------

# (row, conv_stages) -> val acc per seed
ACCS = {
    ("baseline", 0): [0.90, 0.92, 0.94],
    ("baseline", 3): [0.95, 0.95, 0.95],
    ("ls", 0): [0.93, 0.95, 0.97],  # +3.0 over a spread of 2.0: a gain
    ("ls", 3): [0.94, 0.96, 0.95],  # +0.0 over a spread of 1.0: within the spread
}


def _study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'c.db'}", study_name="c", direction="maximize")
    dists = {
        "components": CategoricalDistribution(list(COMPONENT_ROWS)),
        "conv_stages": CategoricalDistribution([0, 3]),
        "train.seed": CategoricalDistribution([0, 1, 2]),
    }
    for (row, conv), accs in ACCS.items():
        for seed, acc in enumerate(accs):
            attrs = {Attr.VAL_ACC.value: acc, Attr.SECONDS.value: 10.0, Attr.EPOCHS.value: 1}
            params = {"components": row, "conv_stages": conv, "train.seed": seed}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=acc, user_attrs=attrs))
    return study


def test_the_table_puts_the_seed_means_and_gains_beside_the_papers(tmp_path: Path) -> None:
    lines = components_table(_study(tmp_path)).splitlines()
    assert lines[0] == (
        "| row | components | HaloNet top-1 (paper) | gain | ResNet top-1 (paper) | gain "
        "| attention val acc (ours, conv_stages=0, digits) | gain | conv val acc (ours, conv_stages=3, digits) | gain "
        "| note |"
    )
    assert lines[2] == "| baseline | – | 78.6 | – | 77.6 | – | 92.0 ± 2.0 (n=3) | – | 95.0 ± 0.0 (n=3) | – |  |"
    assert lines[3] == (
        "| ls | LS | 79.7 | +1.1 | 78.1 | +0.5 | 95.0 ± 2.0 (n=3) | +3.0 | 95.0 ± 1.0 (n=3) | +0.0 "
        "| conv: within seed spread (+0.0 vs ± 1.0) |"
    )
    assert len(lines) == 4


def test_archdsl_report_prints_the_table_and_the_page_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _study(tmp_path)
    assert (
        main(["report", "--storage", f"sqlite:///{tmp_path / 'c.db'}", "--study", "c", "--out", str(tmp_path / "r")])
        == 0
    )
    out = capsys.readouterr().out
    assert components_table(study) in out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Training components (HaloNet)</h2>" in page
    assert "conv: within seed spread (+0.0 vs ± 1.0)" in page
    assert write_report(study, tmp_path / "r2").components == components_table(study)


def test_no_table_without_the_parameter(tmp_path: Path) -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    assert components_table(study) is None


@pytest.mark.slow
def test_a_real_search_reports_its_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = tmp_path / "components.yaml"
    search.write_text(
        f"""\
base: {BASE}
budget: {{trials: 4}}
sampler: {{name: grid}}
pruner: {{name: none}}
set: {{train.epochs: 1, stages.0.channels: 32, stages.1.channels: 32, stages.2.channels: 32, stages.3.channels: 32}}
params:
  components: {{choice: [baseline, ls_se_silu]}}
  conv_stages: {{choice: [0, 3]}}
  train.seed: {{choice: [0]}}
"""
    )
    out = tmp_path / "out"
    assert main(["search", str(search), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| baseline", "| ls_se_silu"))]
    assert [line.split(" | ")[0] for line in lines] == ["| baseline", "| ls_se_silu"]
    baseline, row = (line.split(" | ") for line in lines)
    assert baseline[6].endswith("(n=1)") and baseline[8].endswith("(n=1)")
    assert (row[3], row[5]) == ("+1.3", "+1.5")  # the paper's gains
    assert row[7][0] in "+-" and row[9][0] in "+-"  # ours: one seed gives gains but no spread to read them by
    assert lines[1].endswith(" |  |")
