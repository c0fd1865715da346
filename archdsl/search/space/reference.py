"""Markdown reference of the search-file format, generated from its models (README's "Search-file reference")."""

from __future__ import annotations

from archdsl.search.space.definition import (
    BlockChoiceParam,
    BudgetSpec,
    ChoiceParam,
    FloatParam,
    IntParam,
    ObjectiveSpec,
    PrescreenSpec,
    PrunerSpec,
    SamplerSpec,
    SearchDefinition,
    WorkersSpec,
)
from archdsl.spec.reference import model_table, reference_start, write_into

__all__ = ["BEGIN", "END", "search_reference"]

BEGIN = "<!-- search-reference:begin -->"
END = "<!-- search-reference:end -->"


def search_reference() -> str:
    out = reference_start(BEGIN, "search-file", "archdsl.search.space.reference")
    out += model_table("Search file (top level)", SearchDefinition)
    out += model_table("`objectives[]`", ObjectiveSpec)
    out += model_table("`budget`", BudgetSpec)
    out += model_table("`sampler`", SamplerSpec)
    out += model_table("`pruner`", PrunerSpec)
    out += model_table("`prescreen`", PrescreenSpec)
    out += model_table("`workers`", WorkersSpec)
    out += [
        "#### `params`",
        "",
        "Each key is a spec path (`*` matches every stage or block; the reserved key `conv_stages` sets how many "
        "leading stages get a conv mixer), each value one of the forms below. A parameter is sampled only "
        "where its path exists in the trial's spec (after `conv_stages` and block choices are applied).",
        "",
    ]
    forms = (
        ("`{int: [low, high]}`", IntParam),
        ("`{float: [low, high]}`", FloatParam),
        ("`{choice: [values]}`", ChoiceParam),
        ("`{choice: {name: mapping}}`", BlockChoiceParam),
    )
    for form, model in forms:
        out += model_table(form, model)
    return "\n".join([*out, END])


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        print("updated" if write_into(sys.argv[2], BEGIN, END, search_reference) else "up to date")
    else:
        print(search_reference())
