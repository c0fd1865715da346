"""Markdown reference of the search-file format, generated from its models into ``docs/reference/search.md``
(``python -m archdsl.search.space.reference --write [PATH]``, default :data:`PAGE`)."""

from __future__ import annotations

from archdsl.search.space.definition import (
    BlockChoiceParam,
    BudgetSpec,
    ChoiceParam,
    FloatParam,
    IntParam,
    LatencySpec,
    ObjectiveSpec,
    PrescreenSpec,
    PrunerSpec,
    SamplerSpec,
    SearchDefinition,
    WorkersSpec,
)
from archdsl.spec.reference import main, model_table, reference_start

__all__ = ["BEGIN", "END", "PAGE", "search_reference"]

BEGIN = "<!-- search-reference:begin -->"
END = "<!-- search-reference:end -->"
PAGE = "docs/reference/search.md"
"""The documentation page that holds the generated reference, from the repository root."""


def search_reference() -> str:
    out = reference_start(BEGIN, "search-file", "archdsl.search.space.reference", PAGE)
    out += model_table("Search file (top level)", SearchDefinition)
    out += model_table("`objectives[]`", ObjectiveSpec)
    out += model_table("`budget`", BudgetSpec)
    out += model_table("`budget.latency`", LatencySpec)
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

    sys.exit(main(sys.argv[1:], PAGE, BEGIN, END, search_reference))
