"""Bad specs give one located line per problem, with suggestions."""

from __future__ import annotations

import re

import pytest

import archdsl
from archdsl.errors import ShapeError, SpecError
from archdsl.spec.load import spec_from_text

GOOD = """\
name: small
input: {channels: 3, size: 32}
stem: {type: conv, channels: 16}
stages:
  - channels: 32
    stride: 2
    blocks:
      - {type: bottleneck, repeat: 2}
head: {type: classifier, num_classes: 10}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        spec_from_text(text, "s.yaml")
    return [str(p) for p in err.value.problems]


def test_good_spec_loads_with_defaults() -> None:
    spec = spec_from_text(GOOD)
    assert spec.version == 1
    assert spec.stages[0].blocks[0].mixer.type == "conv"
    assert spec.stages[0].blocks[0].expansion == 4


def test_misspelt_key_suggests() -> None:
    assert _problems(GOOD.replace("channels: 16", "chanels: 16")) == [
        "s.yaml:3:1: stem.channels: is required but missing",
        "s.yaml:3:20: stem.chanels: unknown key 'chanels' (did you mean 'channels'?)",
    ]


def test_misspelt_block_type_suggests() -> None:
    (line,) = _problems(GOOD.replace("type: bottleneck", "type: botleneck"))
    assert line.startswith("s.yaml:8:16: stages.0.blocks.0.type: unknown type 'botleneck' (did you mean 'bottleneck'?)")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("halo_attention", "halo"),
        ("global", "global_attention"),
        ("globl_attention", "global_attention"),
        ("hallo", "halo"),
        ("halo_attn", "halo"),
    ],
)
def test_misspelt_mixer_type_suggests_the_kind_it_names(typo: str, meant: str) -> None:
    text = GOOD.replace("{type: bottleneck, repeat: 2}", f"{{type: bottleneck, repeat: 2, mixer: {{type: {typo}}}}}")
    (line,) = _problems(text)
    assert f"unknown type '{typo}' (did you mean '{meant}'?)" in line, line


def test_wrong_types_and_ranges_are_all_reported() -> None:
    text = GOOD.replace("repeat: 2", "repeat: 0").replace("num_classes: 10", 'num_classes: "10"')
    assert _problems(text) == [
        "s.yaml:8:36: stages.0.blocks.0.repeat: must be greater than or equal to 1, got 0",
        "s.yaml:9:39: head.num_classes: must be a valid integer, got '10'",
    ]


def test_missing_type_tag() -> None:
    (line,) = _problems(GOOD.replace("{type: bottleneck, repeat: 2}", "{repeat: 2}"))
    assert line.startswith("s.yaml:8:9: stages.0.blocks.0: a 'type' key is required")


def test_top_level_must_be_mapping() -> None:
    assert _problems("- 1\n- 2\n") == ["s.yaml:1:1: a spec must be a mapping, got list"]


def test_shape_error_is_located_at_the_block() -> None:
    spec = spec_from_text(GOOD.replace("{type: bottleneck, repeat: 2}", "{type: bottleneck, expansion: 3}"), "s.yaml")
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec)
    assert str(err.value) == (
        "s.yaml:8:39: stages.0.blocks.0.expansion: stage channels=32 must be divisible by expansion=3"
    )


def test_groups_must_divide_the_width() -> None:
    text = GOOD.replace("{type: bottleneck, repeat: 2}", "{type: bottleneck, mixer: {type: conv, groups: 3}}")
    with pytest.raises(ShapeError) as err:
        archdsl.plan_model(spec_from_text(text, "s.yaml"))
    assert str(err.value) == (
        "s.yaml:8:56: stages.0.blocks.0.mixer.groups: bottleneck width=8 must be divisible by groups=3"
    )


def test_stage_shapes() -> None:
    plan = archdsl.plan_model(spec_from_text(GOOD))
    assert plan.stem.out_shape == (16, 32, 32)
    assert plan.stages[0].out_shape == (32, 16, 16)
    assert plan.output == (10,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nstem:\n  type: conv\n   channels: 8\n",
            "s.yaml:4:4: invalid YAML: this key is indented 3 spaces, more than the key on line 3 (2): it reads as the "
            "continuation of that line's value; indent it like the keys it belongs with",
        ),
        (
            "name: x\nstem:\n  type conv\n  channels: 8\n",
            "s.yaml:3:3: invalid YAML: this line has no ':' after its key, so line 4 was read as the rest of "
            "its value; write 'key: value' (a colon and a space)",
        ),
        (
            "name: x\nstem:\n  type: conv\n channels: 8\n",
            "s.yaml:4:2: invalid YAML: this line is indented 1 space, which lines up with no key above it (line 3 is "
            "indented 2); align it with the keys of the mapping it belongs to",
        ),
        (
            "name: x\nstem:\n\ttype: conv\n",
            "s.yaml:3:1: invalid YAML: a tab indents this line; YAML indentation must be spaces",
        ),
        ("name: x\nstem: {type: conv\n", None),  # anything else keeps PyYAML's words, still located
    ],
)
def test_indentation_mistakes_are_said_at_the_line_to_edit(text: str, expected: str | None) -> None:
    (line,) = _problems(text)
    if expected is None:
        assert re.match(r"s\.yaml:\d+:\d+: invalid YAML: ", line), line
    else:
        assert line == expected


def test_stride_is_an_integer_or_an_up_sampling_fraction() -> None:
    assert _problems(GOOD.replace("stride: 2", "stride: 3/4")) == [
        "s.yaml:6:13: stages.0.stride: must be an integer 1 to 4 (down-sampling) or '1/2' or '1/4' (up-sampling by "
        "a transition that up-samples, e.g. carafe), got '3/4'"
    ]
    assert _problems(GOOD.replace("stride: 2", "stride: 5")) == [
        "s.yaml:6:13: stages.0.stride: must be an integer 1 to 4 (down-sampling) or '1/2' or '1/4' (up-sampling by "
        "a transition that up-samples, e.g. carafe), got 5"
    ]
    up = spec_from_text(GOOD.replace("stride: 2", "stride: 1/4\n    transition: {type: carafe}"))
    assert (up.stages[0].stride, up.stages[0].upsample, up.stages[0].downsample) == ("1/4", 4, 1)
    from archdsl.spec.load import dump_spec

    assert "stride: 1/4\n" in dump_spec(up) and spec_from_text(dump_spec(up)) == up
