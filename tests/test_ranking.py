"""The module ranking of `archdsl report`: per named choice, trials grouped by value, best first."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from archdsl.search.report.ranking import module_ranking, ranking_table

CTX = CategoricalDistribution(["nonlocal", "danet", "bottleneck", "ccnet"])
ATT = CategoricalDistribution(["none", "se"])
LR = FloatDistribution(1e-3, 1e-2, log=True)


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    rows = [  # (context block, attention, val acc, params, flops)
        ("nonlocal", "se", 0.91, 1000, 5_000_000),
        ("nonlocal", "none", 0.95, 900, 4_000_000),
        ("danet", "se", 0.97, 1200, 6_000_000),
        ("bottleneck", "none", 0.90, 800, 3_000_000),
    ]
    for ctx, att, acc, params, flops in rows:
        study.add_trial(
            optuna.trial.create_trial(
                params={"stages.2.blocks.1": ctx, "stages.*.blocks.0.attention": att, "lr": 3e-3},
                distributions={"stages.2.blocks.1": CTX, "stages.*.blocks.0.attention": ATT, "lr": LR},
                value=acc,
                user_attrs={"params": params, "flops": flops},
            )
        )
    study.add_trial(  # a failed trial counts for nothing
        optuna.trial.create_trial(
            params={"stages.2.blocks.1": "ccnet", "stages.*.blocks.0.attention": "se", "lr": 3e-3},
            distributions={"stages.2.blocks.1": CTX, "stages.*.blocks.0.attention": ATT, "lr": LR},
            state=optuna.trial.TrialState.FAIL,
        )
    )
    return study


def test_rows_are_grouped_by_value_and_ranked_best_first() -> None:
    rows = module_ranking(_study())
    ctx = [r for r in rows if r.param == "stages.2.blocks.1"]
    assert [r.value for r in ctx] == ["danet", "nonlocal", "bottleneck", "ccnet"]
    nl = ctx[1]
    assert (nl.trials, nl.best, nl.params, nl.flops) == (2, 0.95, 900, 4_000_000)
    assert abs(nl.mean - 0.93) < 1e-12  # type: ignore[operator]
    assert ctx[-1].trials == 0 and ctx[-1].best is None  # never completed: listed, not ranked
    att = [r for r in rows if r.param == "stages.*.blocks.0.attention"]
    assert [(r.value, r.trials) for r in att] == [("se", 2), ("none", 2)]
    assert {r.param for r in rows} == {"stages.2.blocks.1", "stages.*.blocks.0.attention"}  # lr is not named


def test_minimising_ranks_the_smallest_first() -> None:
    study = optuna.create_study(direction="minimize")
    for value, loss in [("a", 0.5), ("b", 0.2)]:
        study.add_trial(
            optuna.trial.create_trial(
                params={"m": value}, distributions={"m": CategoricalDistribution(["a", "b"])}, value=loss
            )
        )
    assert [r.value for r in module_ranking(study)] == ["b", "a"]


def test_table_states_rank_and_cost() -> None:
    table = ranking_table(_study(), "val/acc")
    assert table is not None
    lines = table.splitlines()
    assert lines[0].startswith("| parameter | value | rank | trials | best val/acc |")
    assert "| `stages.2.blocks.1` | danet | 1 | 1 | 0.9700 | 0.9700 | 1,200 | 6.00 |" in lines
    assert "| `stages.2.blocks.1` | ccnet | – | 0 | – | – | – | – |" in lines
