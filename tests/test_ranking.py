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


def test_pruned_and_rejected_trials_are_counted_and_a_value_only_pruned_shows_what_they_reported() -> None:
    study = _study()
    pruned = optuna.trial.TrialState.PRUNED
    for ctx, steps, rejected in [
        ("ccnet", {1: 0.40, 2: 0.52}, False),  # ran and was pruned: its last value counts
        ("ccnet", {1: 0.45}, False),
        ("danet", {1: 0.30}, False),  # beside a complete trial, the complete one's value stands
        ("bottleneck", {}, True),  # refused before training: counted, no value
    ]:
        study.add_trial(
            optuna.trial.create_trial(
                params={"stages.2.blocks.1": ctx, "stages.*.blocks.0.attention": "se", "lr": 3e-3},
                distributions={"stages.2.blocks.1": CTX, "stages.*.blocks.0.attention": ATT, "lr": LR},
                state=pruned,
                intermediate_values=steps,
                user_attrs={"params": 700, "flops": 2_000_000, "rejected": rejected, "reason": "too big"},
            )
        )
    ctx = {r.value: r for r in module_ranking(study) if r.param == "stages.2.blocks.1"}
    assert list(ctx) == ["danet", "nonlocal", "bottleneck", "ccnet"]  # only pruned: after the complete ones
    assert (ctx["ccnet"].trials, ctx["ccnet"].pruned, ctx["ccnet"].best, ctx["ccnet"].from_pruned) == (2, 2, 0.52, True)
    assert abs(ctx["ccnet"].mean - 0.485) < 1e-12  # type: ignore[operator]
    assert (ctx["danet"].trials, ctx["danet"].pruned, ctx["danet"].best, ctx["danet"].from_pruned) == (
        2,
        1,
        0.97,
        False,
    )
    assert (ctx["bottleneck"].trials, ctx["bottleneck"].rejected, ctx["bottleneck"].complete) == (2, 1, 1)
    lines = ranking_table(study, "val/acc").splitlines()  # type: ignore[union-attr]
    assert (
        "| `stages.2.blocks.1` | ccnet | 4 | 2 (2 pruned) | 0.5200 (pruned) | 0.4850 (pruned) | 700 | 2.00 |" in lines
    )
    assert "| `stages.2.blocks.1` | danet | 1 | 2 (1 pruned) | 0.9700 | 0.9700 | 1,200 | 6.00 |" in lines
    assert "| `stages.2.blocks.1` | bottleneck | 3 | 2 (1 rejected) | 0.9000 | 0.9000 | 800 | 3.00 |" in lines


def test_a_value_whose_trials_were_all_rejected_is_listed_without_a_rank() -> None:
    study = optuna.create_study(direction="maximize")
    dist = CategoricalDistribution(["a", "b"])
    study.add_trial(optuna.trial.create_trial(params={"m": "a"}, distributions={"m": dist}, value=0.5))
    study.add_trial(
        optuna.trial.create_trial(
            params={"m": "b"},
            distributions={"m": dist},
            state=optuna.trial.TrialState.PRUNED,
            user_attrs={"rejected": True},
        )
    )
    lines = ranking_table(study, "v").splitlines()  # type: ignore[union-attr]
    assert lines[-1] == "| `m` | b | – | 1 (1 rejected) | – | – | – | – |"
