"""How well each zero-cost proxy ranked the trained trials of a study: Spearman and Kendall against the metric.

Every trained trial records every proxy's score of its untrained network (``proxies``); this table says, on the
study's own space, whether a proxy ranks architectures better than the plain parameter count or FLOPs (the
baselines the zero-cost literature finds hard to beat) before anyone relies on it to prescreen.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from archdsl.search.record import TrialRecord
from archdsl.search.space.definition import PROXY_NAMES

__all__ = ["MIN_TRIALS", "proxy_correlations", "proxy_table"]

MIN_TRIALS = 5
"""Correlations over fewer trained trials are not shown."""
BASELINES = ("params", "flops")


def proxy_correlations(study: optuna.Study) -> dict[str, tuple[int, float, float]]:
    """Proxy -> (trials, Spearman, Kendall) against the first objective, signed so that > 0 means the proxy's
    ranking agrees with the better trials; proxies recorded on fewer than :data:`MIN_TRIALS` trials are left out."""
    from scipy.stats import kendalltau, spearmanr

    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    pairs: dict[str, list[tuple[float, float]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not t.values:
            continue
        for name, score in TrialRecord.of(t).proxies.items():
            pairs.setdefault(name, []).append((score, sign * t.values[0]))
    out = {}
    for name in [n for n in PROXY_NAMES if len(pairs.get(n, ())) >= MIN_TRIALS]:
        scores, values = zip(*pairs[name], strict=True)
        rho, tau = spearmanr(scores, values).statistic, kendalltau(scores, values).statistic
        out[name] = (len(scores), float(rho), float(tau))
    return out


def proxy_table(study: optuna.Study, metric: str = "the objective") -> str | None:
    """A markdown table of :func:`proxy_correlations`, the baselines marked and each proxy told whether it beats
    the better baseline; None when no proxy has enough trained trials."""
    rows = proxy_correlations(study)
    if not rows:
        return None
    baseline = max((rows[b][1] for b in BASELINES if b in rows and not math.isnan(rows[b][1])), default=None)
    lines = [
        f"| proxy | trials | Spearman with {metric} | Kendall | beats params/flops |",
        "|---|---:|---:|---:|---|",
    ]
    for name, (n, rho, tau) in sorted(rows.items(), key=lambda kv: -_sortable(kv[1][1])):
        if name in BASELINES:
            verdict = "(baseline)"
        elif baseline is None or math.isnan(rho):
            verdict = "–"
        else:
            verdict = "yes" if rho > baseline else "no"
        lines.append(f"| {name} | {n} | {_num(rho)} | {_num(tau)} | {verdict} |")
    return "\n".join(lines)


def _sortable(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"
