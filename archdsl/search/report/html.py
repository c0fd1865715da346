"""A study's report: PNG plots and an HTML page a person would open.

Plots are Optuna's matplotlib visualisations drawn from a copy of the study whose parameters carry short
labels (:mod:`archdsl.search.report.labels`); importances are computed per parameter over the trials where it
was active (a parameter of a part that was not there is not sampled). The trial table is sorted best first,
the best trial marked, values rounded, and paged. For a search over ``conv_stages`` (HaloNet's trade-off
study) the page and the returned text also hold the trade-off table beside the paper's, labelled as digits.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.atomic import atomic_write_text
from archdsl.plan.published import HALONET_TRADEOFF
from archdsl.search.budget import tally
from archdsl.search.record import StudyRecord, TrialRecord
from archdsl.search.report.labels import short_labels
from archdsl.search.report.ranking import ranking_table
from archdsl.search.study import best_trials

__all__ = ["MIN_TRIALS", "PAGE_ROWS", "Report", "importances", "tradeoff_table", "write_report"]

MIN_TRIALS = 10
"""Completed trials below which importances and parallel coordinates are marked as resting on too few."""
PAGE_ROWS = 25
"""Trial-table rows per page."""


@dataclass(frozen=True)
class Report:
    directory: Path
    plots: list[str]
    tradeoff: str | None = None
    ranking: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)


def _stage_list(n: int, first: int, last: int) -> str:
    return ", ".join(str(i) for i in range(first, last + 1)) if last >= first else "–"


def tradeoff_table(study: optuna.Study, stages: int = 4) -> str | None:
    """Markdown table: conv stages, attention stages (numbered 1-4 as in the paper; ``stages.0``-``stages.3``
    in spec paths), val accuracy on digits, train time / the "conv 1,2" row, and the paper's ImageNet row."""
    rows: dict[int, tuple[float, float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        n, record = t.params.get("conv_stages"), TrialRecord.of(t)
        if n is not None and record.seconds is not None and record.val_acc is not None:  # the best of each row
            acc = record.val_acc
            if int(n) not in rows or acc > rows[int(n)][0]:
                rows[int(n)] = (acc, record.seconds)
    if not rows:
        return None
    ref = rows.get(2, next(iter(rows.values())))[1]
    lines = [
        "| conv stages | attention stages | val acc (ours, digits) | train time (ours, / conv 1,2; indicative) "
        "| top-1 (paper, ImageNet) | train time (paper) |",
        "|---|---|---|---|---|---|",
    ]
    for n in sorted(rows):
        acc, sec = rows[n]
        paper = HALONET_TRADEOFF.get(n)
        top1, time = (paper.top1, paper.train_time) if paper else (float("nan"), float("nan"))
        lines.append(
            f"| {_stage_list(n, 1, n)} | {_stage_list(stages, n + 1, stages)} | {acc:.4f} | "
            f"{sec / ref:.2f} ({sec:.1f} s) | {top1} | {time} |"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits (scientific when small or large), the rest as text."""
    if isinstance(value, bool) or not isinstance(value, float):
        return "" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3e}"
    return f"{value:.4g}"


def _labelled(study: optuna.Study, labels: dict[str, str]) -> optuna.Study:
    """An in-memory copy of the finished trials with short parameter names, for the plots."""
    copy = optuna.create_study(directions=study.directions, study_name=study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        copy.add_trial(
            optuna.trial.create_trial(
                params={labels[k]: v for k, v in t.params.items()},
                distributions={labels[k]: d for k, d in t.distributions.items()},
                values=t.values,
                user_attrs=t.user_attrs,
            )
        )
    return copy


def importances(
    study: optuna.Study, target: Callable[[FrozenTrial], float] | None = None
) -> list[tuple[str, float, int]]:
    """``(parameter, importance, trials)`` per parameter, most important first.

    Each parameter is weighed over the completed trials where it was active, against the parameters
    active in all of those trials (fANOVA, normalised over them): a parameter of a part that exists in a
    few trials only is neither credited with the rest's variance nor diluted by trials it played no part in.
    Parameters active in fewer than 2 trials, or never varied there, are left out."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def varied(name: str, trials: list[FrozenTrial]) -> bool:
        return len({repr(t.params[name]) for t in trials}) > 1

    out = []
    for name in sorted({k for t in complete for k in t.params}):
        active = [t for t in complete if name in t.params]
        if len(active) < 2 or not varied(name, active):
            continue
        common = set.intersection(*(set(t.params) for t in active))
        params = sorted(k for k in common if varied(k, active))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params, target=target
            )[name]
        out.append((name, float(value), len(active)))
    return sorted(out, key=lambda r: -r[1])


def _importance_plot(rows: list[tuple[str, float, int]], labels: dict[str, str], metric: str, few: bool) -> Any:
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no parameter varied over two or more completed trials")
    _, ax = plt.subplots()
    shown = rows[::-1]
    ax.barh([f"{labels[n]} (n={k})" for n, _, k in shown], [v for _, v, _ in shown], color="#4c72b0")
    ax.set_xlabel(f"importance for {metric} (fANOVA; n: trials where it was active)")
    title = "Parameter importances"
    if few:
        title += f" — indicative: fewer than {MIN_TRIALS} completed trials"
    ax.set_title(title)
    return ax


def _plots(study: optuna.Study, out: Path, labels: dict[str, str], few: bool) -> tuple[list[str], dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    multi = len(study.directions) > 1
    target = (lambda t: t.values[0]) if multi else None
    metric = _metrics(study)[0]
    short = _labelled(study, labels)
    makers: dict[str, Any] = {
        "history": lambda: vis.plot_optimization_history(short, target=target, target_name=metric),
        "importances": lambda: _importance_plot(importances(study, target), labels, metric, few),
        "parallel_coordinates": lambda: vis.plot_parallel_coordinate(short, target=target, target_name=metric),
    }
    if multi:
        makers["pareto_front"] = lambda: vis.plot_pareto_front(short, target_names=_metrics(study))
    made, skipped = [], {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(11 if name == "parallel_coordinates" else 8, 5)
            if name == "parallel_coordinates":
                for axis in fig.axes:
                    for tick in axis.get_xticklabels():
                        tick.set_rotation(30)
                        tick.set_horizontalalignment("right")
                if few:
                    fig.axes[0].set_title(f"Parallel coordinates — indicative: fewer than {MIN_TRIALS} trials")
            fig.tight_layout()
            path = out / f"{name}.png"
            tmp = out / f".{name}.png.tmp"
            fig.savefig(tmp, dpi=100, format="png")
            tmp.replace(path)
            plt.close(fig)
            made.append(path.name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for this plot
            skipped[name] = str(exc)
    return made, skipped


def _metrics(study: optuna.Study) -> list[str]:
    return StudyRecord.of(study).objective_names(len(study.directions))


def _ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials best first (by the first objective), then the rest by number."""
    trials = study.get_trials(deepcopy=False)
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE and t.values), key=lambda t: (sign * t.values[0], t.number)
    )
    return [*done, *sorted((t for t in trials if t not in done), key=lambda t: t.number)]


def _table(rows: Sequence[FrozenTrial], names: list[str], labels: dict[str, str], best: set[int]) -> str:
    head = ["#", "state", "values", *(labels[n] for n in names), "params", "epochs", "test/acc", "note"]
    titles = ["trial number", "", "", *names, "model parameters", "epochs trained", "", ""]
    out = [
        "<div class='scroll'><table><tr>"
        + "".join(f"<th title='{html.escape(t)}'>{html.escape(h)}</th>" for h, t in zip(head, titles, strict=True))
        + "</tr>"
    ]
    for t in rows:
        record = TrialRecord.of(t)
        state = "rejected" if record.outcome == "rejected" else t.state.name.lower()
        note = record.reason or record.error or ""
        cells = [
            f"{t.number} ★" if t.number in best else str(t.number),
            state,
            ", ".join(_fmt(v) for v in (t.values or [])),
            *(_fmt(t.params.get(k)) for k in names),
            f"{record.params:,}" if record.params is not None else "",
            _fmt(record.epochs),
            _fmt(record.test_acc),
            note if len(note) <= 80 else note[:77] + "...",
        ]
        css = " class='best'" if t.number in best else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "".join([*out, "</table></div>"])


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;white-space:nowrap}th{background:#f3f3f3}"
    ".scroll{overflow-x:auto}tr.best td{background:#fff3c4;font-weight:bold}"
    "img{max-width:48%;margin:4px}img.wide{max-width:98%}"
    ".warn{background:#fdecea;border-left:4px solid #d9534f;padding:6px 10px}nav a{margin-right:1em}"
)


def _page(title: str, body: list[str]) -> str:
    return (
        "\n".join(
            [
                "<!doctype html><html><head><meta charset='utf-8'>",
                f"<title>{html.escape(title)}</title>",
                f"<style>{_STYLE}</style></head><body>",
                *body,
                "</body></html>",
            ]
        )
        + "\n"
    )


def write_report(study: optuna.Study, out: str | Path) -> Report:
    """Write the plots, ``index.html`` (with the first page of trials) and ``trials-K.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    labels = short_labels(names)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    few = len(complete) < MIN_TRIALS
    plots, skipped = _plots(study, out, labels, few)
    table = tradeoff_table(study)
    ranking = ranking_table(study, _metrics(study)[0])
    said = []
    if few and complete:
        n = len(complete)
        said.append(
            f"Importances and parallel coordinates rest on {n} completed trial{'' if n == 1 else 's'} "
            f"(fewer than {MIN_TRIALS}): read them as indicative."
        )
    if table:
        said.append(
            "The trade-off table's accuracies are on the digits data (16 px), not ImageNet, and its "
            "train times are single trials timed during the search under whatever else ran: "
            "indicative only."
        )
    best = {t.number for t in best_trials(study)}
    ranked = _ranked(study)
    pages = [ranked[i : i + PAGE_ROWS] for i in range(0, len(ranked), PAGE_ROWS)] or [[]]
    files = ["index.html", *(f"trials-{k}.html" for k in range(2, len(pages) + 1))]
    nav = (
        "<nav>trials: "
        + "".join(
            f"<a href='{f}'>{k * PAGE_ROWS + 1}–{min((k + 1) * PAGE_ROWS, len(ranked))}</a>"
            for k, f in enumerate(files)
        )
        + "</nav>"
        if len(pages) > 1
        else ""
    )
    counts = tally(trials).counts()
    metric = _metrics(study)[0]
    head = [
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + ", ".join(f"{v} {k}" for k, v in counts.items()) + "</p>",
        *(f"<p class='warn'>{html.escape(w)}</p>" for w in said),
    ]
    if best:
        b = min(best)
        top = next(t for t in trials if t.number == b)
        head.append(f"<p>Best: trial {b} ★, {html.escape(metric)} = {_fmt(top.values[0])}</p>")
    glossary = "".join(
        f"<li><b>{html.escape(labels[n])}</b>: <code>{html.escape(n)}</code></li>" for n in names if labels[n] != n
    )
    first = [
        *head,
        *(f"<img src='{p}' alt='{p}'{' class=wide' if p.startswith('parallel') else ''}>" for p in plots),
        *(["<h2>Conv/attention trade-off (HaloNet)</h2>", _markdown_to_html(table)] if table else []),
        *(["<h2>Modules ranked (per named choice)</h2>", _markdown_to_html(ranking)] if ranking else []),
        f"<h2>Trials (best first by {html.escape(metric)})</h2>",
        nav,
        _table(pages[0], names, labels, best),
        nav,
        *([f"<h3>Parameter labels</h3><ul>{glossary}</ul>"] if glossary else []),
    ]
    atomic_write_text(out / "index.html", _page(f"archdsl study {study.study_name}", first))
    for k, rows in enumerate(pages[1:], start=2):
        body = [
            f"<h1>Study {html.escape(study.study_name)}: trials, page {k}</h1>",
            nav,
            _table(rows, names, labels, best),
            nav,
        ]
        atomic_write_text(out / f"trials-{k}.html", _page(f"archdsl study {study.study_name}, page {k}", body))
    return Report(out, plots, table, ranking, skipped, said, files)


def _markdown_to_html(table: str) -> str:
    rows = [r.strip("|").split("|") for r in table.splitlines() if not r.startswith("|---")]
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in row) + "</tr>")
    return "".join([*out, "</table>"])
