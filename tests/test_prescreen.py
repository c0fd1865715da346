"""Prescreened searches: proposals scored by a zero-cost proxy, the best of each pool trained, the rest recorded
as screened (never counted against the budget, never trained); training-free searches on a proxy objective."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from archdsl.errors import SearchError
from archdsl.launch.run import run_search
from archdsl.search.objective import Objective, TrialContext, Unqueued
from archdsl.search.record import TrialRecord
from archdsl.search.space.load import load_search
from archdsl.search.storages.connect import StudyRef, open_storage
from archdsl.search.storages.liveness import WorkerIdentity
from archdsl.search.storages.retry import Retry
from archdsl.search.study import open_study
from archdsl.search.worker import resolve_storage
from archdsl.train.preempt import PreemptionGuard
from tests.test_search import SEARCH, write_search

PRESCREENED = SEARCH.replace("pruner:", "prescreen: {{proxy: naswot, pool: 6, keep: 2}}\npruner:").replace(
    "name: random", "name: tpe"
)


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


def _check_pools(trials: list[FrozenTrial]) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Every trained trial trains one screened proposal, with its parameters and score; none twice."""
    screened = {t.number: t for t in trials if TrialRecord.of(t).screened}
    trained = [t for t in trials if not TrialRecord.of(t).screened]
    sources = [TrialRecord.of(t).promoted_from for t in trained]
    assert None not in sources and len(set(sources)) == len(sources)
    for t, source in zip(trained, sources, strict=True):
        proposal = screened[source]  # type: ignore[index]
        assert proposal.state == TrialState.FAIL and t.params == proposal.params
        assert TrialRecord.of(t).screen_score == TrialRecord.of(proposal).screen_score
        # the best of its pool: no proposal of the same pool that was not trained scored higher
        pool = TrialRecord.of(proposal).screen_pool
        rivals = [
            TrialRecord.of(s).screen_score
            for s in screened.values()
            if TrialRecord.of(s).screen_pool == pool and s.number not in sources
        ]
        assert all(r is None or r <= TrialRecord.of(proposal).screen_score for r in rivals)  # type: ignore[operator]
    return list(screened.values()), trained


@pytest.mark.slow
def test_a_prescreened_search_trains_the_best_of_each_pool_and_resumes(tmp_path: Path) -> None:
    path = write_search(tmp_path, PRESCREENED, trials=3)
    out = tmp_path / "out"
    result = run_search(load_search(path), out, progress=False, trials=2)
    assert result.trials == {"complete": 2, "pruned": 0, "rejected": 0, "fail": 0, "screened": 6}
    screened, trained = _check_pools(_study(out).trials)
    assert len(screened) == 6 and len(trained) == 2
    # every trained trial recorded every proxy of its untrained network, its promoting score among them
    for t in trained:
        record = TrialRecord.of(t)
        assert set(record.proxies) == {"synflow", "naswot", "grad_norm", "snip", "params", "flops"}
        assert record.proxies["naswot"] == pytest.approx(record.screen_score)
        assert record.proxies["params"] == record.params
    # resumed with a larger budget: one more pool, whose best one trial fills the last slot
    result = run_search(load_search(path), out, progress=False)
    assert result.trials == {"complete": 3, "pruned": 0, "rejected": 0, "fail": 0, "screened": 12}
    screened, trained = _check_pools(_study(out).trials)
    assert len(trained) == 3
    assert not _study(out).get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    proposals = [json.dumps(t.params, sort_keys=True) for t in trained]
    assert len(set(proposals)) == len(proposals)


def test_a_training_free_search_ranks_by_the_proxy(tmp_path: Path) -> None:
    text = SEARCH.replace("base: base.yaml", "base: base.yaml\nobjectives: [{{metric: proxy/naswot}}]")
    path = write_search(tmp_path, text, trials=4)
    out = tmp_path / "out"
    result = run_search(load_search(path), out, progress=False)
    assert result.trials == {"complete": 4, "pruned": 0, "rejected": 0, "fail": 0}
    trials = _study(out).trials
    assert all(TrialRecord.of(t).epochs is None and TrialRecord.of(t).checkpoint is None for t in trials)
    for t in trials:  # the value is the proxy's score, recorded beside it; no other proxy was computed
        assert TrialRecord.of(t).proxies == {"naswot": pytest.approx(t.value)}
    assert result.best[0].value == max(t.value for t in trials)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: tpe", "name: grid"), "the grid sampler trains every point of its grid; a prescreen needs a sampler"),
        (
            ("base: base.yaml", "base: base.yaml\nobjectives: [{{metric: params}}]"),
            "nothing is trained for the objectives (params); drop prescreen",
        ),
        (("keep: 2", "keep: 6"), "keep must be less than pool, got keep=6 and pool=6"),
        (("proxy: naswot", "proxy: nasbot"), "prescreen.proxy: unknown value 'nasbot' (did you mean 'naswot'?)"),
    ],
)
def test_prescreen_problems_are_located(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = PRESCREENED.replace(*change)
    if "grid" in change[1]:
        text = text.replace("train.optimizer.lr: {{float: [1.0e-3, 5.0e-3], log: true}}", "")
    path = write_search(tmp_path, text)
    with pytest.raises(SearchError) as err:
        load_search(path)
    (problem,) = err.value.problems
    line = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if x.startswith("prescreen"))
    assert str(problem).startswith(f"{path}:{line}:")
    assert message in str(problem)


def test_the_report_correlates_each_recorded_proxy_with_the_trained_metric() -> None:
    """Spearman and Kendall against val/acc, worked out by hand on 6 trials: naswot ranks them exactly (+1),
    params exactly backwards (-1), and the table says which beats the baselines."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from archdsl.search.report.proxies import proxy_correlations, proxy_table

    study = optuna.create_study(direction="maximize")
    for i, acc in enumerate([0.90, 0.95, 0.91, 0.99, 0.93, 0.97]):
        proxies = {"naswot": 600 + 100 * acc, "params": -acc, "flops": 5.0 if i < 3 else 6.0}
        study.add_trial(
            create_trial(
                value=acc,
                params={"x": acc},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"proxies": proxies},
            )
        )
    rows = proxy_correlations(study)
    assert rows["naswot"] == (6, pytest.approx(1.0), pytest.approx(1.0))
    assert rows["params"] == (6, pytest.approx(-1.0), pytest.approx(-1.0))
    # flops splits the trials 3/3: ranks (2, 2, 2, 5, 5, 5) (ties averaged) against the accuracies' ranks
    # (1, 4, 2, 6, 3, 5): Pearson of the ranks = 10.5 / sqrt(13.5 x 17.5)
    assert rows["flops"][1] == pytest.approx(10.5 / (13.5 * 17.5) ** 0.5)
    table = proxy_table(study, "val/acc")
    assert table is not None
    lines = table.splitlines()
    assert lines[0].startswith("| proxy | trials | Spearman with val/acc | Kendall |")
    assert lines[2] == "| naswot | 6 | +1.000 | +1.000 | yes |"
    assert lines[-1] == "| params | 6 | -1.000 | -1.000 | (baseline) |"


def test_a_prescreened_worker_trains_only_queued_trials(tmp_path: Path) -> None:
    """The race of four workers: one counts a queued trial, another takes it first, and Optuna samples a fresh
    proposal for the first. A prescreened worker must not train that proposal (nobody scored it): it ends as
    a screened proposal, outside the budget, and the worker counts again; a queued proposal trains."""
    space = load_search(write_search(tmp_path, PRESCREENED, trials=2))
    out = tmp_path / "out"
    out.mkdir()
    ref = resolve_storage(None, out)
    workers = space.definition.workers
    study = open_study(space, open_storage(ref, workers), ref, "search", out, new_study=False, trials=None)
    with PreemptionGuard() as guard:
        context = TrialContext(2, WorkerIdentity(), StudyRef(ref, workers, "search"), Retry(1), guard)
        objective = partial(Objective(space, out, context), queued_only=True)
        with pytest.raises(Unqueued):
            study.optimize(objective, n_trials=1)
        proposal = {"conv_stages": 0, "stages.*.blocks.*.mixer.num_heads": 2, "train.optimizer.lr": 2e-3}
        proposal["stages.0.blocks.0.mixer.halo_size"] = 1
        study.enqueue_trial(proposal, user_attrs={"promoted": {"from": 0, "proxy": "naswot"}})
        study.optimize(objective, n_trials=1)
    sampled, queued = study.trials
    assert sampled.state == TrialState.FAIL and TrialRecord.of(sampled).outcome == "screened"
    assert "queue" in (TrialRecord.of(sampled).reason or "") and not sampled.params  # stopped before sampling
    assert queued.state == TrialState.COMPLETE and TrialRecord.of(queued).epochs is not None
    assert TrialRecord.of(queued).promoted_from == 0 and queued.params == proposal
